"""Index backends, one module each, registered by name in ``index.backend.BACKENDS``.

``faiss_index`` (with ``faiss_types``, ``faiss_gpu``, ``faiss_reader``): FAISS, the default. ``exact``: NumPy brute
force. A new backend is one module here with a ``VectorBackend`` subclass, plus its line in ``BACKENDS``.
"""
