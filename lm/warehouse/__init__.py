"""The warehouse: hive-partitioned Parquet datasets under one root (``store``), their schemas
(``schemas``), and the DuckDB views over them (``views``)."""

from lmpipe.lm.warehouse.schemas import CONTENT_SCHEMAS, RUN_SCHEMAS
from lmpipe.lm.warehouse.store import (
    DB_NAME,
    RUN_ID_RE,
    Warehouse,
    is_temporary,
    order_path,
    read_json,
    write_parquet,
)
from lmpipe.lm.warehouse.views import (
    CONTENT_VIEWS,
    MAX_ORDER,
    VIEW_DOCS,
    read_only_connection,
    rebuild_database,
)

__all__ = [
    "CONTENT_SCHEMAS",
    "CONTENT_VIEWS",
    "DB_NAME",
    "MAX_ORDER",
    "RUN_ID_RE",
    "RUN_SCHEMAS",
    "VIEW_DOCS",
    "Warehouse",
    "is_temporary",
    "order_path",
    "read_json",
    "read_only_connection",
    "rebuild_database",
    "write_parquet",
]
