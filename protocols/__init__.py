"""Protocol definitions and the papers' reference numbers, as data (TOML files).

Shipped inside the wheel as ``evalsuite._protocols``; read with
``evalsuite.protocols.load_protocols()`` and ``evalsuite.paper``.
"""
