# The data lake bucket: private, encrypted, versioned, TLS-only, and tidy about abandoned multipart uploads.

locals {
  use_kms       = var.kms_key_arn != ""
  events_prefix = "${var.prefix}/"
  wheel_key     = "_artifacts/${basename(var.wheel_path)}"
}

resource "aws_s3_bucket" "events" {
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket; audit object access with CloudTrail data events where required.
  #checkov:skip=CKV2_AWS_62:Consumers choose their own notifications; the run manifest under _manifests/ is the commit signal.
  #checkov:skip=CKV_AWS_144:Synthetic, reproducible data (same seed, same bytes); cross-region replication would only double the cost.
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "events" {
  bucket                  = aws_s3_bucket.events.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "events" {
  bucket = aws_s3_bucket.events.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "events" {
  bucket = aws_s3_bucket.events.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_kms ? "aws:kms" : "AES256"
      kms_master_key_id = local.use_kms ? var.kms_key_arn : null
    }
    bucket_key_enabled = local.use_kms
  }
}

resource "aws_s3_bucket_versioning" "events" {
  bucket = aws_s3_bucket.events.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "events" {
  bucket = aws_s3_bucket.events.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-old-events"
    status = var.expire_after_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.events_prefix}events/"
    }

    expiration {
      days = var.expire_after_days > 0 ? var.expire_after_days : 3650
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  # The committed-parts index expires a day before the parts it lists (S3 rounds expiry up to the next midnight
  # UTC, and a run's index is written after its parts, within the day), so events_committed never lists a part
  # that is gone: Athena fails a query that meets a listed file that is not there.
  rule {
    id     = "expire-old-committed-index"
    status = var.expire_after_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.events_prefix}committed/"
    }

    expiration {
      days = var.expire_after_days > 1 ? var.expire_after_days - 1 : 3650
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  depends_on = [aws_s3_bucket_versioning.events]
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.events.arn,
      "${aws_s3_bucket.events.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "events" {
  bucket     = aws_s3_bucket.events.id
  policy     = data.aws_iam_policy_document.tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.events]
}

# The generator's wheel, for the runner to install (see user_data.sh.tftpl).
resource "aws_s3_object" "wheel" {
  bucket      = aws_s3_bucket.events.id
  key         = local.wheel_key
  source      = var.wheel_path
  source_hash = filemd5(var.wheel_path)
}
