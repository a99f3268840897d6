"""Settings live in one module per mode: ``local`` (embedded default), ``production`` and ``test``."""
