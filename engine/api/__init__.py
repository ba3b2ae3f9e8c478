"""The library's facade: ``Engine`` over a store, the defaults and the demo."""
