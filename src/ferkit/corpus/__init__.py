"""Film collections: analyse every video of a manifest into one Parquet part each (locally or on Ray), then report
emotion distributions and timelines, compare models with paired statistics, and query the parts with SQL."""
