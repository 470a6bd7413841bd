"""Alert and finding persistence shared by every lane."""

from kubeguard.store.alerts import AlertQuery, AlertStore, StoreError, default_db_path

__all__ = ["AlertQuery", "AlertStore", "StoreError", "default_db_path"]
