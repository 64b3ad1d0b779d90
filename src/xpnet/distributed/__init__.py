"""Data-parallel training on Dask (placeholder: the engine lands in a sibling branch).

Data larger than memory: :mod:`xpnet.distributed.storage`.
"""
