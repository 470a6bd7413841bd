"""End-to-end scenarios (the Tesla kill chain) used by `kubeguard demo` and tests."""
