"""Handlers: the code that turns a request body into an answer for one model version.

A handler follows SageMaker's contract: `model_fn(model_dir)`, `input_fn(body, content_type)`,
`predict_fn(data, model)` and `output_fn(prediction, accept)`. A user's `inference.py` may
define any subset; what it leaves out comes from the defaults (`modelci.runtime.codecs` for input
and output, `model.predict` on a 2-D NumPy array for prediction). Without a `model_fn` the model
is loaded by a built-in handler chosen from the files in the model folder:

- scikit-learn: `*.joblib`, `*.pkl`, `*.pickle` (joblib, else pickle)
- XGBoost: `*.ubj`, `*.json` holding a booster, `xgboost-model` (predicts with `inplace_predict`)
- ONNX: `*.onnx` (onnxruntime, first input and first output)

The library each needs is imported only when its kind of model is loaded, with a clear error
when it is missing from the model's environment.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modelci.runtime import codecs
from modelci.runtime.errors import (
    BadRequest,
    HandlerError,
    HandlerNotFound,
    ServeError,
)
from modelci.runtime.introspection import signature_of
from modelci.runtime.signature import Signature, read_signature

HOOKS = ("model_fn", "input_fn", "predict_fn", "output_fn")
HANDLER_FILES = ("code/inference.py", "inference.py")
_SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.str_,
}
_modules = itertools.count()
log = logging.getLogger("modelci.serve")


@dataclass
class BuiltinModel:
    """A model loaded by a built-in handler, with its default predict function."""

    kind: str
    file: Path
    model: Any
    predict: Callable[[Any], Any]


def _missing(kind: str, file: Path, package: str) -> HandlerNotFound:
    return HandlerNotFound(
        f"{file.name} is a {kind} model, but {package} is not installed in this environment: "
        f"add {package} to the model's requirements"
    )


def _load_sklearn(file: Path) -> BuiltinModel:
    try:
        import joblib  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        if file.suffix == ".joblib":
            raise _missing("scikit-learn (joblib)", file, "joblib") from None
        with file.open("rb") as stream:
            model = pickle.load(stream)
    else:
        model = joblib.load(file)
    if not hasattr(model, "predict"):
        raise HandlerNotFound(
            f"{file.name} holds a {type(model).__name__}, which has no predict method: "
            "write an inference.py with predict_fn"
        )
    return BuiltinModel("sklearn", file, model, model.predict)


def _load_xgboost(file: Path) -> BuiltinModel:
    try:
        import xgboost  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise _missing("XGBoost", file, "xgboost") from None
    booster = xgboost.Booster()
    booster.load_model(str(file))
    return BuiltinModel("xgboost", file, booster, booster.inplace_predict)


def _load_onnx(file: Path) -> BuiltinModel:
    try:
        import onnxruntime  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise _missing("ONNX", file, "onnxruntime") from None
    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    first = inputs[0]
    dtype = _ONNX_DTYPES.get(first.type, np.float32)

    def predict(data: Any) -> Any:
        if len(inputs) != 1:
            raise TypeError(
                f"{file.name} takes {len(inputs)} inputs; the default predict feeds one: "
                "write an inference.py with predict_fn"
            )
        return session.run(None, {first.name: np.asarray(data, dtype=dtype)})[0]

    return BuiltinModel("onnx", file, session, predict)


_LOADERS: dict[str, Callable[[Path], BuiltinModel]] = {
    "sklearn": _load_sklearn,
    "xgboost": _load_xgboost,
    "onnx": _load_onnx,
}


def _kind_of(file: Path) -> str | None:
    if file.suffix in _SKLEARN_SUFFIXES:
        return "sklearn"
    if file.suffix == ".ubj" or file.name == "xgboost-model":
        return "xgboost"
    if file.suffix == ".onnx":
        return "onnx"
    if file.suffix == ".json":
        with file.open("rb") as stream:
            head = stream.read(4096)
        if b'"learner"' in head:  # an XGBoost model saved as JSON, not just any JSON file
            return "xgboost"
    return None


def find_builtin(model_dir: Path) -> tuple[str, Path] | None:
    """The built-in handler kind and model file for a model folder, or None when none fits.

    A file whose stem is `model` wins over others; several other candidates are ambiguous.
    """
    if not model_dir.is_dir():
        raise HandlerNotFound(f"model folder {model_dir} does not exist")
    found = [
        (kind, file)
        for file in sorted(model_dir.iterdir())
        if file.is_file() and (kind := _kind_of(file)) is not None
    ]
    if len(found) > 1:
        named = [(kind, file) for kind, file in found if file.stem == "model"]
        if len(named) != 1:
            names = ", ".join(file.name for _, file in found)
            raise HandlerNotFound(
                f"{model_dir} holds several model files ({names}): name the one to serve "
                "model.<suffix>, or write an inference.py with model_fn"
            )
        found = named
    return found[0] if found else None


def load_builtin(model_dir: Path) -> BuiltinModel | None:
    """Load the model folder's model with the built-in handler that fits it, if one does."""
    fit = find_builtin(model_dir)
    if fit is None:
        return None
    kind, file = fit
    return _LOADERS[kind](file)


def import_handler(path: Path) -> ModuleType:
    """Import a user's `inference.py` from its path; its folder goes on sys.path for siblings."""
    if not path.is_file():
        raise HandlerNotFound(f"handler {path} does not exist")
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"modelci_handler_{next(_modules)}", path)
    if spec is None or spec.loader is None:
        raise HandlerNotFound(f"cannot import handler {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failed(hook: str, error: Exception) -> HandlerError:
    log.error("%s raised", hook, exc_info=error)
    return HandlerError(f"{hook} raised {type(error).__name__}: {error}")


class Handler:
    """One model version's serving code: the model plus the four hooks, user or default.

    `batchable` is true when prediction is the default one (`model.predict` on rows), which can
    be called once for the rows of several requests; a user `predict_fn` is called per request.
    Then the input `signature`, when known, is checked before the model sees a request, and a
    ValueError of the model's (scikit-learn's refusal of an input) is the client's 400.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        default_predict: Callable[[Any], Any] | None,
        input_fn: Callable[[bytes, str], Any] | None = None,
        predict_fn: Callable[[Any, Any], Any] | None = None,
        output_fn: Callable[[Any, str], Any] | None = None,
        signature: Signature | None = None,
    ):
        if predict_fn is None and default_predict is None:
            raise HandlerNotFound(
                f"the model from model_fn ({type(model).__name__}) has no predict method: "
                "define predict_fn in inference.py"
            )
        self.model = model
        self.name = name
        self.input_fn = input_fn
        self.predict_fn = predict_fn
        self.output_fn = output_fn
        self.default_predict = default_predict
        self.batchable = predict_fn is None
        self.signature = signature if self.batchable else None

    def accept_type(self, accept: str | None) -> str:
        """The media type to answer in; 406 when the default output cannot produce it.

        A user `output_fn` gets the header itself, with none or `*/*` meaning JSON.
        """
        if self.output_fn is None:
            return codecs.choose_accept(accept)
        if not accept or accept.strip() == "*/*":
            return codecs.JSON
        return accept.strip()

    def decode(self, body: bytes, content_type: str | None) -> Any:
        """The request body as model input: `input_fn`, or the default codecs."""
        media = codecs.media_type(content_type)
        if self.input_fn is None:
            data = codecs.decode(body, media)
        else:
            try:
                data = self.input_fn(body, media)
            except ServeError:
                raise
            except _INPUT_ERRORS as error:
                raise BadRequest(f"input_fn could not read the body: {error}") from None
            except Exception as error:
                raise _failed("input_fn", error) from None
        if self.signature is not None and isinstance(data, np.ndarray):
            return self.signature.check(data)
        return data

    def predict(self, data: Any) -> Any:
        """The prediction for decoded input: `predict_fn(data, model)` or `model.predict`."""
        try:
            if self.predict_fn is not None:
                return self.predict_fn(data, self.model)
            assert self.default_predict is not None
            return self.default_predict(data)
        except ServeError:
            raise
        except ValueError as error:
            if self.predict_fn is not None:
                raise _failed("predict_fn", error) from None
            raise BadRequest(f"the model refused the input: {error}") from None
        except Exception as error:
            raise _failed("predict_fn" if self.predict_fn else "predict", error) from None

    def encode(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        """The answer body and its content type, for an `accept_type` result."""
        if self.output_fn is None:
            try:
                return codecs.encode(prediction, accept), accept
            except (TypeError, ValueError) as error:
                raise _failed("output", error) from None
        try:
            result = self.output_fn(prediction, accept)
        except ServeError:
            raise
        except Exception as error:
            raise _failed("output_fn", error) from None
        content_type = accept.partition(",")[0].partition(";")[0].strip()
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result
        if isinstance(result, str):
            return result.encode(), str(content_type)
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result), str(content_type)
        raise HandlerError(
            f"output_fn returned {type(result).__name__}: expected bytes, str "
            "or (body, content_type)"
        )

    def predict_body(
        self, body: bytes, content_type: str | None, accept: str | None = None
    ) -> tuple[bytes, str]:
        """Answer one request body in process, as the server would (without batching).

        Returns the answer body and its content type; raises a `ServeError` whose `status` is
        the HTTP status the server would answer with.
        """
        accept_type = self.accept_type(accept)
        return self.encode(self.predict(self.decode(body, content_type)), accept_type)


def _signature(
    model_dir: Path, model: Any, predict: Callable[[Any], Any] | None
) -> Signature | None:
    """The signature recorded with the artifact; for one trained before signatures were
    recorded (or whose file is unreadable), what the model itself says."""
    try:
        recorded = read_signature(model_dir)
    except ValueError as error:
        log.warning("ignoring the recorded input signature: %s", error)
        recorded = None
    if recorded is not None or predict is None:
        return recorded
    return signature_of(model, predict)


def load_handler(
    model_dir: str | Path, handler_path: str | Path | None = None, *, signature: bool = True
) -> Handler:
    """Load a model version's handler and model, and its input signature (unless not
    `signature`).

    The handler is `handler_path`, else `code/inference.py` or `inference.py` in the model
    folder when present (SageMaker's layout), else the built-in handler for the model file.
    """
    model_dir = Path(model_dir)
    if handler_path is None:
        handler_path = next(
            (model_dir / name for name in HANDLER_FILES if (model_dir / name).is_file()), None
        )
    if handler_path is None:
        builtin = load_builtin(model_dir)
        if builtin is None:
            raise HandlerNotFound(
                f"no handler fits {model_dir}: expected a model file (*.joblib, *.pkl, *.ubj, "
                "xgboost JSON, *.onnx) or an inference.py with model_fn"
            )
        return Handler(
            builtin.model,
            name=f"{builtin.kind} ({builtin.file.name})",
            default_predict=builtin.predict,
            signature=_signature(model_dir, builtin.model, builtin.predict) if signature else None,
        )

    path = Path(handler_path)
    module = import_handler(path)
    hooks = {hook: getattr(module, hook, None) for hook in HOOKS}
    for hook, function in hooks.items():
        if function is not None and not callable(function):
            raise HandlerNotFound(f"{path}: {hook} is not a function")
    defined = ", ".join(hook for hook, function in hooks.items() if function is not None)
    name = f"{path.name} ({defined or 'no hooks'})"
    model_fn = hooks["model_fn"]
    if model_fn is not None:
        model = model_fn(str(model_dir))
        predict = getattr(model, "predict", None)
        default_predict = predict if callable(predict) else None
    else:
        builtin = load_builtin(model_dir)
        if builtin is None:
            raise HandlerNotFound(
                f"{path} defines no model_fn and no built-in handler fits {model_dir}"
            )
        model, default_predict = builtin.model, builtin.predict
        name += f" + {builtin.kind} ({builtin.file.name})"
    batchable = hooks["predict_fn"] is None and default_predict is not None
    return Handler(
        model,
        name=name,
        default_predict=default_predict,
        input_fn=hooks["input_fn"],
        predict_fn=hooks["predict_fn"],
        output_fn=hooks["output_fn"],
        signature=_signature(model_dir, model, default_predict)
        if signature and batchable
        else None,
    )


__all__ = ["BuiltinModel", "Handler", "find_builtin", "load_handler"]
