"""L7 attack detectors of the DPI engine: HTTP, SQL protocols, DNS, floods and scans.

The engine calls `http.inspect_http_request`, `sql.inspect_sql_query`, `sql.SqlAuthMonitor`,
`dns.DnsTunnelDetector` and `volume.ScanFloodDetector`; each returns `kubeguard.net.types.Detection`s
(stable rule name, severity, masked evidence, ATT&CK ids) that the engine turns into Alerts.
"""
