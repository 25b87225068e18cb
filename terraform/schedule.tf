# Optional recurring runs: EventBridge Scheduler launches a fresh runner from the launch template on schedule;
# each run appends to the same prefix and terminates itself.

data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count              = var.schedule != "" ? 1 : 0
  name_prefix        = "temu-ng-eventgen-scheduler-"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "LaunchTheRunner"
    actions   = ["ec2:RunInstances"]
    resources = ["*"]

    condition {
      test     = "ArnLike"
      variable = "ec2:LaunchTemplate"
      values   = [aws_launch_template.runner.arn]
    }
  }

  statement {
    sid       = "TagTheRunner"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:aws:ec2:${var.region}:*:instance/*", "arn:aws:ec2:${var.region}:*:volume/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  statement {
    sid       = "PassTheRunnerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.runner.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = var.schedule != "" ? 1 : 0
  name   = "launch-runner"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "runs" {
  #checkov:skip=CKV_AWS_297:The schedule's input is a launch template id, no secret; the AWS-owned key encrypts it.
  count               = var.schedule != "" ? 1 : 0
  name_prefix         = "temu-ng-eventgen-"
  schedule_expression = var.schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:aws:scheduler:::aws-sdk:ec2:runInstances"
    role_arn = aws_iam_role.scheduler[0].arn
    input = jsonencode({
      MinCount       = 1
      MaxCount       = 1
      LaunchTemplate = { LaunchTemplateId = aws_launch_template.runner.id, Version = "$Latest" }
    })
  }
}
