# Optional instance comparison: one short-lived instance per type in var.perf_instance_types runs the benchmark
# harness (perf/bench.py) and uploads its results.json to <prefix>/perf/<type>/ before terminating itself.
# `make perf-compare BUCKET=... PREFIX=...` then downloads them and runs perf/compare.py.

locals {
  perf_scripts = ["perf/bench.py", "perf/bench_core.py", "perf/baselines/naive_faker.py"]
}

resource "aws_s3_object" "perf_scripts" {
  for_each    = length(var.perf_instance_types) > 0 ? toset(local.perf_scripts) : toset([])
  bucket      = aws_s3_bucket.events.id
  key         = "_artifacts/${each.value}"
  source      = "${path.module}/../${each.value}"
  source_hash = filemd5("${path.module}/../${each.value}")
}

data "aws_ssm_parameter" "al2023_perf" {
  for_each = toset(var.perf_instance_types)
  name     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${can(regex("^[a-z][0-9]+[a-z]*g[a-z]*\\.", each.key)) ? "arm64" : "x86_64"}"
}

resource "aws_instance" "perf" {
  for_each = toset(var.perf_instance_types)

  ami                                  = data.aws_ssm_parameter.al2023_perf[each.key].value
  instance_type                        = each.key
  iam_instance_profile                 = aws_iam_instance_profile.runner.name
  subnet_id                            = data.aws_subnet.runner.id
  vpc_security_group_ids               = [aws_security_group.runner.id]
  associate_public_ip_address          = var.subnet_id == ""
  instance_initiated_shutdown_behavior = "terminate"
  ebs_optimized                        = true
  monitoring                           = true

  user_data = templatefile("${path.module}/perf_user_data.sh.tftpl", {
    region        = var.region
    bucket        = aws_s3_bucket.events.id
    prefix        = var.prefix
    wheel_key     = local.wheel_key
    instance_type = each.key
    events        = var.perf_events
  })

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size           = 30
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = local.use_kms ? var.kms_key_arn : null
    delete_on_termination = true
  }

  tags = { Name = "temu-ng-eventgen-perf-${each.key}" }

  lifecycle {
    ignore_changes = all
  }

  depends_on = [aws_s3_object.wheel, aws_s3_object.perf_scripts, aws_iam_role_policy.runner]
}
