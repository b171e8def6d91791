"""pyrunner's Python runtime: the zygote, the task process and the Code-node semantics.

Standard library only. Embedded in the pyrunner binary; see python/doc.go for the protocol.
"""
