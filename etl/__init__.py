"""etl: out-of-core ETL for large public data sets."""

import os

# Arrow's C++ code (the Parquet writer, the JSON reader) allocates from Arrow's own default pool, which
# pyarrow.set_memory_pool does not change; mimalloc there keeps freed memory mapped (measured: converting 20 NVD
# pages at a 256 MB budget peaked at 275 MB with it, 225 MB with jemalloc). Read when pyarrow is first imported,
# so it is set here, before any module imports pyarrow; a user's own setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"
