"""The models and data behind ``compval demo``.

``build_demo(directory, seed=...)`` trains a float32 reference MLP on scikit-learn's bundled
digits, makes four compressed candidates from it with real tools (onnxruntime dynamic and static
int8 quantization, magnitude pruning, distillation), writes the held-out data as Parquet and an
acceptance spec over all of them. It needs the ``demo`` extra (onnx, onnxruntime, scikit-learn,
pyarrow), imported only when ``build_demo`` runs, so importing this package stays cheap.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.demo._build import DemoFiles, build_demo

__all__ = ["DemoFiles", "build_demo"]

name_public_functions(__name__, globals(), __all__)
