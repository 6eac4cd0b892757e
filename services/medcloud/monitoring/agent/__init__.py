"""The node agent: collects, judges locally, buffers on disk, and backfills the centre."""
