variable "region" {
  description = "AWS region for the bucket, the runner and the Glue catalog."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like an AWS region, e.g. eu-west-1 or af-south-1."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket that holds the event logs (globally unique)."
  type        = string

  validation {
    condition = alltrue([
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)),
      !can(regex("\\.\\.|\\.-|-\\.", var.bucket_name)),
      !can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$", var.bucket_name)),
      !startswith(var.bucket_name, "xn--"),
    ])
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens."
  }
}

variable "prefix" {
  description = "Key prefix of the event logs in the bucket: parts under <prefix>/events/, manifests under <prefix>/_manifests/."
  type        = string
  default     = "temu-ng/v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.prefix))
    error_message = "prefix must be non-empty path segments separated by single slashes, without a leading or trailing slash."
  }
}

variable "instance_type" {
  description = "Compute-optimized instance for the runner. A Graviton type (c7g, c6g, ...) selects the arm64 AMI."
  type        = string
  default     = "c7i.2xlarge"

  validation {
    condition     = can(regex("^c[5-8][a-z]*\\.(large|[0-9]*xlarge|metal)$", var.instance_type))
    error_message = "instance_type must be a compute-optimized type (c5 to c8 families), e.g. c7i.2xlarge or c7g.2xlarge."
  }
}

variable "workers" {
  description = "Worker processes for gen run (match the instance's vCPUs: 8 on a c7i.2xlarge)."
  type        = number
  default     = 8

  validation {
    condition     = var.workers >= 1 && var.workers <= 192 && floor(var.workers) == var.workers
    error_message = "workers must be a whole number from 1 to 192."
  }
}

variable "events" {
  description = "Events per run (gen run --events)."
  type        = number
  default     = 500000

  validation {
    condition     = var.events >= 1 && var.events <= 10000000000 && floor(var.events) == var.events
    error_message = "events must be a whole number from 1 to 10,000,000,000."
  }
}

variable "duration" {
  description = "Size each run by simulated time instead (gen run --duration), e.g. 1h to match an hourly schedule; empty: use events."
  type        = string
  default     = ""

  validation {
    condition     = var.duration == "" || can(regex("^([0-9]+[wdhms])+$", var.duration))
    error_message = "duration must be empty or like 1h, 30m, 1d or 1h30m."
  }
}

variable "schedule" {
  description = "Optional EventBridge Scheduler expression for recurring runs, e.g. rate(1 hour) or cron(0 2 * * ? *). Empty: no schedule."
  type        = string
  default     = ""

  validation {
    condition     = var.schedule == "" || can(regex("^(rate\\([0-9]+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.schedule))
    error_message = "schedule must be empty, rate(N unit) or cron(...)."
  }
}

variable "launch_now" {
  description = "Launch one run right away on apply (the instance terminates itself when the run ends)."
  type        = bool
  default     = true
}

variable "wheel_path" {
  description = "Path to the generator's wheel (make wheel builds it into dist/); Terraform uploads it to the bucket for the runner."
  type        = string

  validation {
    condition     = endswith(var.wheel_path, ".whl")
    error_message = "wheel_path must point to a .whl file built by make wheel."
  }
}

variable "kms_key_arn" {
  description = "Optional KMS key for server-side encryption of the bucket; empty uses SSE-S3 (AES256)."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be empty or a KMS key ARN."
  }
}

variable "subnet_id" {
  description = "Subnet for the runner; it needs outbound HTTPS (package index, S3, CloudWatch). Empty: the first subnet of the default VPC."
  type        = string
  default     = ""
}

variable "enable_ssm" {
  description = "Allow Session Manager access to the runner (no SSH key, no open inbound port either way)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the runner's CloudWatch log group, in days (a year by default: the logs are small)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts, e.g. 30 or 365."
  }
}

variable "expire_after_days" {
  description = "Expire event objects this many days after creation (0: keep forever); the committed-parts index a day earlier."
  type        = number
  default     = 0

  validation {
    condition     = floor(var.expire_after_days) == var.expire_after_days && (var.expire_after_days == 0 || var.expire_after_days >= 2)
    error_message = "expire_after_days must be 0 (keep forever) or a whole number of days, 2 or more (the committed-parts index expires a day before the parts)."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "perf_instance_types" {
  description = "Instance types to benchmark with perf/bench.py, one short-lived instance each (empty: none)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.perf_instance_types : can(regex("^[a-z][0-9][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "perf_instance_types must be EC2 instance types, e.g. [\"c7i.2xlarge\", \"c7g.2xlarge\"]."
  }
}

variable "perf_events" {
  description = "Events per benchmark run on the perf instances."
  type        = number
  default     = 5000000

  validation {
    condition     = var.perf_events >= 1000 && floor(var.perf_events) == var.perf_events
    error_message = "perf_events must be a whole number of at least 1000."
  }
}
