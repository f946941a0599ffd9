"""The `sim2real` command line, configs, pipelines, metrics and transfer-gap reports."""
