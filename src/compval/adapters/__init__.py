"""Model adapters: one small class per runtime behind the ModelAdapter contract.

``load_model`` builds an adapter from a spec's model entry through the runtime registry
(``register_adapter``; third-party runtimes register through the ``compval.adapters`` entry
point group); ``as_adapter`` wraps a Python object (adapter, file path, torch module,
scikit-learn style estimator or callable). Model paths may be MLflow URIs (``models:/``,
``runs:/``; ``register_model_scheme``). Importing this package never imports onnxruntime,
torch, scikit-learn or mlflow: each adapter imports its runtime when it opens.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.adapters._base import (
    AdapterInfo,
    ModelAdapter,
    RuntimeOperators,
    bind_inputs,
    check_inputs,
)
from compval.adapters._files import describe_file
from compval.adapters._mlflow import mlflow_http_limits, public_uri
from compval.adapters._registry import (
    AdapterRegistration,
    adapter_names,
    as_adapter,
    default_model_name,
    derive_model,
    is_model_uri,
    load_model,
    register_adapter,
    register_model_scheme,
    suffix_adapters,
)
from compval.adapters.callable import CallableAdapter
from compval.adapters.endpoint import EndpointAdapter
from compval.adapters.litert import LiteRTAdapter
from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.adapters.sklearn import SklearnAdapter
from compval.adapters.torch import TorchAdapter

__all__ = [
    "AdapterInfo",
    "RuntimeOperators",
    "AdapterRegistration",
    "CallableAdapter",
    "EndpointAdapter",
    "LiteRTAdapter",
    "ModelAdapter",
    "OnnxRuntimeAdapter",
    "SklearnAdapter",
    "TorchAdapter",
    "adapter_names",
    "as_adapter",
    "bind_inputs",
    "check_inputs",
    "default_model_name",
    "derive_model",
    "describe_file",
    "is_model_uri",
    "load_model",
    "mlflow_http_limits",
    "public_uri",
    "register_adapter",
    "register_model_scheme",
    "suffix_adapters",
]

name_public_functions(__name__, globals(), __all__)
