"""evalsuite's own datasets: one module per dataset family, each a plain declaration (a
:class:`~evalsuite.data.spec.DatasetSpec`), registered through the ``evalsuite.datasets`` entry-point
group in evalsuite's ``pyproject.toml`` exactly as a plugin's would be. Nothing imports these modules
directly: the registry (:mod:`evalsuite.data.registry`) loads them.

Every fact here (URLs, SHA-256 values, layouts, thresholds, licences) says where it comes from; a
value nobody publishes is left out ("recorded at first download"), never guessed.
"""
