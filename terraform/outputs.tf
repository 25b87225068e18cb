output "bucket" {
  description = "The event-log bucket."
  value       = aws_s3_bucket.events.id
}

output "prefix" {
  description = "Where the runs land: <prefix>/events/dt=YYYY-MM-DD/, <prefix>/_manifests/ and <prefix>/committed/dt=YYYY-MM-DD/."
  value       = "s3://${aws_s3_bucket.events.id}/${local.events_prefix}"
}

output "runner_role_arn" {
  description = "The runner's least-privilege role."
  value       = aws_iam_role.runner.arn
}

output "instance_id" {
  description = "The instance launched on apply (it terminates itself when its run ends)."
  value       = try(aws_instance.run_now[0].id, null)
}

output "log_group" {
  description = "CloudWatch log group with each run's output."
  value       = aws_cloudwatch_log_group.runner.name
}

output "glue_table" {
  description = "Glue table over every part under events/, queryable from Athena as parts land."
  value       = "${aws_glue_catalog_database.events.name}.${aws_glue_catalog_table.events["events"].name}"
}

output "glue_table_committed" {
  description = "Glue table over the committed runs' parts only (what the manifests list), for Athena."
  value       = "${aws_glue_catalog_database.events.name}.${aws_glue_catalog_table.events["events_committed"].name}"
}

output "example_athena_query" {
  description = "A first query to run in Athena (committed runs only)."
  value       = "SELECT dt, event_type, count(*) AS events FROM ${aws_glue_catalog_database.events.name}.${aws_glue_catalog_table.events["events_committed"].name} WHERE dt >= '2025-11-01' GROUP BY 1, 2 ORDER BY 1, 3 DESC"
}
