"""Model adapters: one small class per runtime behind the ModelAdapter contract.

``load_model`` builds an adapter from a spec's model entry; ``as_adapter`` wraps a Python
object (adapter, file path, torch module, scikit-learn style estimator or callable).
Importing this package never imports onnxruntime, torch or scikit-learn: each adapter imports
its runtime when it opens.
"""

from __future__ import annotations

from compval.adapters._base import AdapterInfo, ModelAdapter, bind_inputs, check_inputs
from compval.adapters._factory import as_adapter, load_model
from compval.adapters.callable import CallableAdapter
from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.adapters.sklearn import SklearnAdapter
from compval.adapters.torch import TorchAdapter

__all__ = [
    "AdapterInfo",
    "CallableAdapter",
    "ModelAdapter",
    "OnnxRuntimeAdapter",
    "SklearnAdapter",
    "TorchAdapter",
    "as_adapter",
    "bind_inputs",
    "check_inputs",
    "load_model",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
