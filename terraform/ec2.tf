# The runner: a compute-optimized instance that installs the generator, runs it once into the bucket, sends its
# output to CloudWatch and terminates itself. No SSH key, no inbound rule, IMDSv2 only, encrypted root volume.

locals {
  graviton = can(regex("^c[5-8][a-z]*g[a-z]*\\.", var.instance_type))
  arch     = local.graviton ? "arm64" : "x86_64"
}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${local.arch}"
}

data "aws_vpc" "default" {
  count   = var.subnet_id == "" ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = var.subnet_id == "" ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }
}

data "aws_subnet" "runner" {
  # try(): both branches of a conditional are evaluated, and the default VPC's subnets exist only without subnet_id.
  id = var.subnet_id != "" ? var.subnet_id : try(sort(data.aws_subnets.default[0].ids)[0], "")
}

resource "aws_security_group" "runner" {
  name_prefix = "temu-ng-eventgen-runner-"
  description = "Runner: no inbound access; outbound HTTPS only (package index, S3, CloudWatch)"
  vpc_id      = data.aws_subnet.runner.vpc_id

  egress {
    description = "HTTPS to AWS APIs and the package index"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_launch_template" "runner" {
  name_prefix                          = "temu-ng-eventgen-runner-"
  image_id                             = data.aws_ssm_parameter.al2023.value
  instance_type                        = var.instance_type
  instance_initiated_shutdown_behavior = "terminate"
  ebs_optimized                        = true
  update_default_version               = true

  user_data = base64encode(templatefile("${path.module}/user_data.sh.tftpl", {
    region    = var.region
    bucket    = aws_s3_bucket.events.id
    prefix    = var.prefix
    workers   = var.workers
    size_flag = var.duration != "" ? "--duration ${var.duration}" : "--events ${var.events}"
    wheel_key = local.wheel_key
    log_group = aws_cloudwatch_log_group.runner.name
  }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.runner.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 30
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = local.use_kms ? var.kms_key_arn : null
      delete_on_termination = true
    }
  }

  network_interfaces {
    subnet_id                   = data.aws_subnet.runner.id
    security_groups             = [aws_security_group.runner.id]
    associate_public_ip_address = var.subnet_id == ""
    delete_on_termination       = true
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "temu-ng-eventgen-runner" }
  }
}

resource "aws_instance" "run_now" {
  count = var.launch_now ? 1 : 0

  launch_template {
    id      = aws_launch_template.runner.id
    version = aws_launch_template.runner.latest_version
  }

  # The same settings as the launch template, stated again on the instance so that they hold (and can be
  # checked) whatever the template's version.
  iam_instance_profile = aws_iam_instance_profile.runner.name
  ebs_optimized        = true
  monitoring           = true

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

  # The instance terminates itself when the run ends; Terraform must not try to bring it back.
  lifecycle {
    ignore_changes = all
  }

  depends_on = [aws_s3_object.wheel, aws_iam_role_policy.runner]
}
