resource "aws_cloudwatch_log_group" "runner" {
  name              = "/temu-ng-eventgen/runner"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.use_kms ? var.kms_key_arn : null
}
