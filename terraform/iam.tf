# The runner's role: exactly what `gen run --bucket` does under the prefix, and nothing else.
# gen run lists under its prefix (the up-front check), heads and puts objects, runs multipart uploads, aborts its
# own, and reads back what it wrote (manifests, checksums). No delete, no bucket configuration, no other bucket.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name_prefix        = "temu-ng-eventgen-runner-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

data "aws_iam_policy_document" "runner" {
  statement {
    sid    = "WriteAndReadBackUnderThePrefix"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.events.arn}/${local.events_prefix}*"]
  }

  statement {
    sid       = "ListOnlyThePrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.events.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.events_prefix, "${local.events_prefix}*"]
    }
  }

  statement {
    sid       = "InstallTheGenerator"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.events.arn}/${local.wheel_key}", "${aws_s3_bucket.events.arn}/_artifacts/perf/*"]
  }

  statement {
    sid       = "FetchTheBenchmarkScripts"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.events.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["_artifacts/perf/*"]
    }
  }

  statement {
    sid       = "WriteItsLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.runner.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.use_kms ? [1] : []

    content {
      sid       = "UseTheBucketKey"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "runner" {
  name   = "generator"
  role   = aws_iam_role.runner.id
  policy = data.aws_iam_policy_document.runner.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.runner.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "runner" {
  name_prefix = "temu-ng-eventgen-runner-"
  role        = aws_iam_role.runner.name
}
