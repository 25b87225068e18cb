# Two Glue tables with the same 16 columns and Athena partition projection on dt (by day, as `gen run` partitions
# by default; a day's hour=HH/ folders, from --partition-by hour, are read with it):
# - events: every part under <prefix>/events/, queryable the moment it lands, a run still uploading included;
# - events_committed: only the parts of committed runs. Its partitions are <prefix>/committed/dt=.../, where each
#   run, after its manifest (the commit), writes <run_id>.txt listing its parts of that day: Hive's
#   SymlinkTextInputFormat, the way Delta Lake shows Athena and Presto only the files of its commits.
# The columns come from glue_columns.json, written by `gen schema --glue` from the generator's one schema
# declaration (tests/test_terraform.py checks the two agree).

locals {
  glue_columns = jsondecode(file("${path.module}/glue_columns.json"))
  glue_tables = {
    events = {
      folder        = "events"
      input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    }
    events_committed = {
      folder        = "committed"
      input_format  = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    }
  }
}

resource "aws_glue_catalog_database" "events" {
  name = "temu_ng_events"
}

moved {
  from = aws_glue_catalog_table.events
  to   = aws_glue_catalog_table.events["events"]
}

resource "aws_glue_catalog_table" "events" {
  for_each = local.glue_tables

  name          = each.key
  database_name = aws_glue_catalog_database.events.name
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "classification"              = "parquet"
    "EXTERNAL"                    = "TRUE"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "2024-11-01,NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "storage.location.template"   = "s3://${aws_s3_bucket.events.id}/${local.events_prefix}${each.value.folder}/dt=$${dt}/"
  }

  partition_keys {
    name = "dt"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.events.id}/${local.events_prefix}${each.value.folder}/"
    input_format  = each.value.input_format
    output_format = each.value.output_format

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.glue_columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}
