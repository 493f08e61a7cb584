"""The stand-ins cannot invent an API that TensorRT or the CUDA contract lacks.

`tests/standin_trt.py` replaces the `tensorrt` module in the CPU tests. mypy checks mmedge's calls
against tensorrt-stubs, but the stand-in is a separate module: nothing in mypy ties its names to the
stubs. This test does, by parsing both (with `ast`, importing nothing):

1. every public module-level name the stand-in defines (classes, functions, `__version__`) is a
   module-level name of the `tensorrt` stub package, except the stand-in plumbing in `PLUMBING`
   (which mmedge is checked never to use);
2. every public member of a stand-in class (methods, properties, class attributes, nested classes,
   enum members, `self.X = ...` instance attributes) exists in the stub class of the same name or its
   stub base classes (as a def, property, annotated/assigned attribute, nested class or a `:ivar X:`
   of the class docstring). `__init__` is checked only where the stub class has one: classes that
   TensorRT creates itself (ICudaEngine, IExecutionContext) have no Python constructor;
3. every checked method/function has the parameter names (without self, positional order) of one
   of the stub's overloads. The stand-in may leave out trailing parameters that have a default in
   the stub (`create_execution_context()` for `create_execution_context(strategy=...)`): a call the
   stand-in accepts is then still a call TensorRT accepts. It may not add parameters, rename them,
   or give a default to a parameter the stub requires. A stand-in property must be a property or
   an annotated attribute in the stub.

It also checks that `StandinCuda` implements the `CudaApi` protocol with its parameter names, and has
no other public method or attribute than the test hooks in `CUDA_TEST_HOOKS`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[4]
STANDIN_TRT = REPO / "tests" / "standin_trt.py"

# Stand-in plumbing, not TensorRT API: test_mmedge_never_uses_the_standin_plumbing checks mmedge ignores them.
PLUMBING = frozenset({"make_plan", "MAGIC", "CUDA"})

# Public members of StandinCuda that CudaApi lacks: hooks for the TensorRT stand-in and the tests.
CUDA_TEST_HOOKS = frozenset({
    "device_view",  # method: numpy view of device bytes (the TensorRT stand-in reads/writes tensors with it)
    "enqueue",  # method: queue an operation on a stream (used by the TensorRT stand-in's execute_async_v3)
    "trace",  # attribute: (stream, what) in the order work ran, for ordering assertions
    "gpu",  # attribute: device name given to the constructor
    "capability",  # attribute: compute capability given to the constructor
    "devices",  # attribute: number of visible devices given to the constructor
    "device",  # attribute: the device selected by set_device
})

_IVAR = re.compile(r":ivar\s+(\w+)\s*:")


def _load_test_typing() -> ModuleType:
    """test_typing.py (repairs the stubs), loaded by path so that the import mode does not matter."""
    spec = importlib.util.spec_from_file_location("_trt_test_typing", Path(__file__).with_name("test_typing.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- parameters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """The parameter names of a def (without self/cls), and which of them have defaults."""

    positional: tuple[str, ...]
    defaults: frozenset[str]
    keyword_only: frozenset[str]
    var_positional: bool
    var_keyword: bool

    @classmethod
    def of(cls, func: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> Params:
        a = func.args
        positional = [p.arg for p in (*a.posonlyargs, *a.args)]
        defaults = set(positional[len(positional) - len(a.defaults) :])
        if method and not _decorated(func, "staticmethod") and positional:
            defaults.discard(positional.pop(0))  # self / cls
        defaults |= {p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None}
        return cls(tuple(positional), frozenset(defaults), frozenset(p.arg for p in a.kwonlyargs),
                   a.vararg is not None, a.kwarg is not None)

    def __str__(self) -> str:
        names = [f"{n}=" if n in self.defaults else n for n in self.positional]
        names += ["*args"] if self.var_positional else []
        names += [f"{n}= (kw)" if n in self.defaults else f"{n} (kw)" for n in sorted(self.keyword_only)]
        names += ["**kwargs"] if self.var_keyword else []
        return "(" + ", ".join(names) + ")"

    def accepted_by(self, stub: Params) -> bool:
        """Same names in the same order, or a prefix of the stub's that leaves out only defaulted ones."""
        n = len(self.positional)
        return (
            self.positional == stub.positional[:n]
            and all(name in stub.defaults for name in stub.positional[n:])
            and self.defaults <= stub.defaults
            and self.keyword_only <= stub.keyword_only
            and stub.keyword_only - self.keyword_only <= stub.defaults
            and (stub.var_positional or not self.var_positional)
            and (stub.var_keyword or not self.var_keyword)
        )


def _decorated(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == name) or (isinstance(d, ast.Attribute) and d.attr == name)
        for d in func.decorator_list
    )


def _is_property(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return _decorated(func, "property") or _decorated(func, "setter") or _decorated(func, "getter")


# ---- the stubs ---------------------------------------------------------------------------------------


@dataclass
class StubClass:
    """The members a stub class (with its stub bases) offers."""

    name: str
    functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=set)  # annotated/assigned in the body
    ivars: set[str] = field(default_factory=set)  # documented only as `:ivar X:`
    classes: dict[str, StubClass] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.functions or name in self.attributes or name in self.ivars or name in self.classes


def _stub_class(node: ast.ClassDef, module_classes: dict[str, ast.ClassDef], seen: tuple[str, ...] = ()) -> StubClass:
    out = StubClass(node.name)
    for base in node.bases:  # members of stub base classes (Logger(ILogger) has ILogger.log)
        base_node = module_classes.get(base.id) if isinstance(base, ast.Name) else None
        if base_node is not None and base_node.name not in seen:
            inherited = _stub_class(base_node, module_classes, (*seen, node.name))
            for name, defs in inherited.functions.items():
                out.functions.setdefault(name, []).extend(defs)
            out.attributes |= inherited.attributes
            out.ivars |= inherited.ivars
            out.classes.update(inherited.classes)
    docstring = ast.get_docstring(node, clean=False) or ""
    out.ivars |= set(_IVAR.findall(docstring))
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            out.functions.setdefault(stmt.name, []).append(stmt)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            out.attributes.add(stmt.target.id)
        elif isinstance(stmt, ast.Assign):
            out.attributes |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, ast.ClassDef):
            out.classes[stmt.name] = _stub_class(stmt, module_classes, (*seen, node.name))
    return out


@dataclass
class Stubs:
    """Module-level names of the `tensorrt` stub package, with the definitions they resolve to."""

    functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]
    classes: dict[str, StubClass]
    others: set[str]  # annotated values, re-exported modules, ...

    def has(self, name: str) -> bool:
        return name in self.functions or name in self.classes or name in self.others

    @classmethod
    def parse(cls, root: Path) -> Stubs:
        """Read `root/tensorrt/__init__.pyi`, following its imports into `tensorrt_bindings`."""
        modules = {
            "tensorrt": ast.parse((root / "tensorrt" / "__init__.pyi").read_text()),
            "tensorrt_bindings": ast.parse((root / "tensorrt_bindings" / "__init__.pyi").read_text()),
            "tensorrt_bindings.tensorrt": ast.parse((root / "tensorrt_bindings" / "tensorrt.pyi").read_text()),
        }
        defs = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        top = {module: {s.name: s for s in tree.body if isinstance(s, defs)} for module, tree in modules.items()}
        stubs = cls({}, {}, set())

        def define(name: str, module: str, definition: ast.stmt | None) -> None:
            if isinstance(definition, ast.ClassDef):
                classes = {k: v for k, v in top[module].items() if isinstance(v, ast.ClassDef)}
                stubs.classes[name] = _stub_class(definition, classes)
            elif isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
                stubs.functions.setdefault(name, []).append(definition)
            else:
                stubs.others.add(name)

        for stmt in modules["tensorrt"].body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module in modules:
                for alias in stmt.names:
                    define(alias.asname or alias.name, stmt.module, top[stmt.module].get(alias.name))
            elif isinstance(stmt, ast.ImportFrom | ast.Import):
                stubs.others |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
            elif isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                define(stmt.name, "tensorrt", stmt)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                stubs.others.add(stmt.target.id)
            elif isinstance(stmt, ast.Assign):
                stubs.others |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        return stubs


# ---- the checker -------------------------------------------------------------------------------------


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _names(target: ast.expr) -> Iterator[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _names(element)
    else:
        yield target


def _instance_attributes(cls: ast.ClassDef) -> dict[str, int]:
    """Public `self.X = ...` in the class's methods: name → first line."""
    found: dict[str, int] = {}
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or not method.args.args:
            continue
        self_name = method.args.args[0].arg
        for node in ast.walk(method):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = [n for t in node.targets for n in _names(t)]
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for t in targets:
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == self_name
                        and _public(t.attr)):
                    found.setdefault(t.attr, t.lineno)
    return found


def _check_function(
    where: str, func: ast.FunctionDef | ast.AsyncFunctionDef, overloads: list[ast.FunctionDef | ast.AsyncFunctionDef],
    *, method: bool,
) -> list[str]:
    mine = Params.of(func, method=method)
    theirs = [Params.of(o, method=method) for o in overloads if not _is_property(o)]
    if any(mine.accepted_by(t) for t in theirs):
        return []
    listed = " | ".join(str(t) for t in theirs) or "none (a property)"
    return [f"{where}{mine}: parameters match no stub overload: {listed}"]


def _check_class(where: str, cls: ast.ClassDef, stub: StubClass) -> list[str]:
    problems: list[str] = []
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            name = stmt.name
            if not _public(name) or (name == "__init__" and "__init__" not in stub.functions):
                continue
            if not stub.has(name):
                problems.append(f"{where}.{name}: not in the stub class")
            elif _is_property(stmt):
                is_stub_property = any(_is_property(f) for f in stub.functions.get(name, []))
                if not (is_stub_property or name in stub.attributes):
                    problems.append(f"{where}.{name}: a property here, not a property or attribute in the stubs")
            elif name in stub.functions and not all(_is_property(f) for f in stub.functions[name]):
                problems += _check_function(f"{where}.{name}", stmt, stub.functions[name], method=True)
            else:
                problems.append(f"{where}.{name}: a method here, an attribute or property in the stubs")
        elif isinstance(stmt, ast.ClassDef):
            if stmt.name in stub.classes:
                problems += _check_class(f"{where}.{stmt.name}", stmt, stub.classes[stmt.name])
            elif _public(stmt.name):
                problems.append(f"{where}.{stmt.name}: no such nested class in the stubs")
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in (n for target in targets for n in _names(target)):
                if isinstance(t, ast.Name) and _public(t.id) and not stub.has(t.id):
                    problems.append(f"{where}.{t.id}: class attribute not in the stub class")
    for name in _instance_attributes(cls):
        if not stub.has(name):
            problems.append(f"{where}.{name}: instance attribute (self.{name}) not in the stub class")
    return problems


def check_standin(source: str, stubs: Stubs, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Everything a stand-in `tensorrt` module defines that the stubs lack; [] when it is all TensorRT API."""
    problems: list[str] = []
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            defined = [stmt.name]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            defined = [t.id for target in targets for t in _names(target) if isinstance(t, ast.Name)]
        else:
            continue  # imports are the stand-in's own tools, not definitions
        for name in (n for n in defined if _public(n) and n not in allowed):
            if not stubs.has(name):
                problems.append(f"{name}: not a module-level name of tensorrt")
            elif isinstance(stmt, ast.ClassDef):
                if name in stubs.classes:
                    problems += _check_class(name, stmt, stubs.classes[name])
                else:
                    problems.append(f"{name}: a class here, not a class in the stubs")
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                if name in stubs.functions:
                    problems += _check_function(name, stmt, stubs.functions[name], method=False)
                else:
                    problems.append(f"{name}: a function here, not a function in the stubs")
            elif name in stubs.classes or name in stubs.functions:
                problems.append(f"{name}: a value here, a class or function in the stubs")
    return problems


# ---- the tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Stubs:
    test_typing = _load_test_typing()
    if test_typing.stubs_root() is None:
        pytest.skip("tensorrt-stubs is not installed")
    return Stubs.parse(test_typing.write_fixed_stubs(tmp_path_factory.mktemp("trt_stubs")))


def test_the_stub_index_sees_the_tensorrt_api(stubs: Stubs) -> None:
    """The index resolves re-exports, bases, overloads and `:ivar` lines (else the checks prove nothing)."""
    assert {"Runtime", "ICudaEngine", "IExecutionContext", "Logger", "DataType"} <= stubs.classes.keys()
    assert "nptype" in stubs.functions and "__version__" in stubs.others
    assert len(stubs.functions["nptype"]) == 1
    assert "log" in stubs.classes["Logger"].functions  # inherited from the stub ILogger
    assert len(stubs.classes["IExecutionContext"].functions["set_input_shape"]) == 3  # @overload
    assert "num_DLA_cores" in stubs.classes["Runtime"].ivars | set(stubs.classes["Runtime"].functions)
    assert "execute_async_v2" not in stubs.classes["IExecutionContext"].functions  # removed in TensorRT 10


def test_standin_tensorrt_defines_only_tensorrt_api(stubs: Stubs) -> None:
    problems = check_standin(STANDIN_TRT.read_text(), stubs, allowed=PLUMBING)
    assert problems == [], "\n".join(problems)


def test_plumbing_allowlist_is_tight(stubs: Stubs) -> None:
    """Each allowlisted name is defined by the stand-in and really absent from TensorRT."""
    defined = set()
    for stmt in ast.parse(STANDIN_TRT.read_text()).body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef):
            defined.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert defined >= PLUMBING, PLUMBING - defined
    assert not any(stubs.has(name) for name in PLUMBING)


def test_mmedge_never_uses_the_standin_plumbing() -> None:
    """No `trt.make_plan`/`trt.MAGIC`/`trt.CUDA` (or `from tensorrt import ...` of them) in mmedge."""
    uses = []
    for path in sorted((REPO / "mmedge").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                   for a in n.names if a.name == "tensorrt"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tensorrt":
                uses += [f"{path}:{node.lineno} {a.name}" for a in node.names if a.name in PLUMBING]
            elif (isinstance(node, ast.Attribute) and node.attr in PLUMBING
                  and isinstance(node.value, ast.Name) and node.value.id in aliases):
                uses.append(f"{path}:{node.lineno} {node.value.id}.{node.attr}")
    assert uses == [], uses


INVENTED = '''
import enum

__version__ = "8.6.1"

class IExecutionContext:
    def __init__(self, engine):              # not checked: TensorRT has no Python constructor here
        self.engine = engine
        self.bindings = []                   # no such attribute
    def execute_async_v2(self, bindings, stream_handle):  # removed in TensorRT 10
        return True
    def execute_async_v3(self, stream_handle):
        return True
    def set_input_shape(self, tensor, dims):  # TensorRT: (name, shape)
        return True
    @property
    def active_optimization_profile(self):   # a property in the stubs too
        return 0
    @property
    def set_tensor_address(self):            # a method in the stubs
        return 0

class ICudaEngine:
    def create_execution_context(self):      # leaves out the defaulted `strategy`: accepted
        return IExecutionContext(self)
    def get_binding_index(self, name):       # removed in TensorRT 10
        return 0
    def get_tensor_profile_shape(self, name):  # leaves out the required profile_index
        return []

class Runtime:
    def __init__(self, logger=None):         # the stubs require `logger`
        self.DLA_core = -1
    def deserialize_cuda_engine(self, serialized_engine, strict=False):  # no `strict` in TensorRT
        return None

class Logger:
    class Severity(enum.IntEnum):
        ERROR = 1
        NOTICE = 5                           # no such severity
    def __init__(self, min_severity=None):
        self.min_severity = min_severity
        self.sink = []                       # no such attribute
    def log(self, severity, msg):            # inherited from the stub ILogger: accepted
        pass

class DataType(enum.IntEnum):
    FLOAT = 0
    DOUBLE = 99                              # no such type

def nptype(dtype):                           # TensorRT: nptype(trt_type)
    return float

def make_engine(onnx):                       # not TensorRT API
    return b""

EXPLICIT_BATCH = 1                           # removed in TensorRT 10
'''


def test_the_checker_catches_an_invented_api(stubs: Stubs) -> None:
    problems = check_standin(INVENTED, stubs)
    reported = {p.split(":")[0].split("(")[0] for p in problems}
    assert reported == {
        "IExecutionContext.bindings",
        "IExecutionContext.execute_async_v2",
        "IExecutionContext.set_input_shape",
        "IExecutionContext.set_tensor_address",
        "ICudaEngine.get_binding_index",
        "ICudaEngine.get_tensor_profile_shape",
        "Runtime.__init__",
        "Runtime.deserialize_cuda_engine",
        "Logger.Severity.NOTICE",
        "Logger.sink",
        "DataType.DOUBLE",
        "nptype",
        "make_engine",
        "EXPLICIT_BATCH",
    }, "\n".join(problems)
    assert len(problems) == len(reported), "\n".join(problems)
    by_name = {p.split(":")[0].split("(")[0]: p for p in problems}
    assert "(name, shape)" in by_name["IExecutionContext.set_input_shape"]
    assert "not in the stub class" in by_name["IExecutionContext.execute_async_v2"]
    assert "instance attribute" in by_name["Logger.sink"]
    assert check_standin(INVENTED, stubs, allowed=frozenset({"make_engine"})) == [
        p for p in problems if not p.startswith("make_engine")
    ]


# ---- the CUDA stand-in against the CudaApi protocol --------------------------------------------------


def _public_methods(cls: type) -> dict[str, list[str]]:
    """Public methods defined by `cls` itself (not `object`/`Protocol` machinery): name → parameter names."""
    return {
        name: list(inspect.signature(member).parameters)[1:]
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_standin_cuda_implements_exactly_the_cuda_contract() -> None:
    from standin_cuda import StandinCuda

    from mmedge.runtime.cuda.contract import CudaApi

    protocol, standin = _public_methods(CudaApi), _public_methods(StandinCuda)
    assert len(protocol) >= 20, protocol  # the protocol was read (a broken read would check nothing)
    missing = sorted(protocol.keys() - standin.keys())
    renamed = {n: (standin[n], p) for n, p in protocol.items() if n in standin and standin[n] != p}
    assert not missing, f"StandinCuda lacks {missing}"
    assert not renamed, f"parameter names differ from CudaApi (stand-in, protocol): {renamed}"

    extra_methods = standin.keys() - protocol.keys()
    cuda = StandinCuda()
    attributes = {n for n in vars(cuda) if not n.startswith("_")}
    attributes |= {n for n, v in vars(StandinCuda).items() if not n.startswith("_") and not inspect.isfunction(v)}
    extra_attributes = attributes - set(CudaApi.__annotations__)
    assert extra_methods | extra_attributes <= CUDA_TEST_HOOKS, sorted((extra_methods | extra_attributes)
                                                                       - CUDA_TEST_HOOKS)
    assert set(CudaApi.__annotations__) <= attributes  # `name`
    assert isinstance(cuda, CudaApi)
