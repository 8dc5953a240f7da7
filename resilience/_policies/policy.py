"""What every policy shares: composition into runners, ``call``/``acall``, decoration.

A *runner* is a callable ``run(*args, **kwargs)``: the policy's behaviour around a
call of its ``inner`` callable, fixed when the runner is built by
``Policy._sync_runner(inner)`` / ``_async_runner(inner)``. ``inner`` is the next
policy's runner, or the protected function itself for the innermost policy, so a
decorated function is exactly one runner deep per policy and pays for no extra wrapper
frame. (Each frame is measurable: on a small VM an extra coroutine layer costs about
150 ns, more than half of what a closed breaker may cost in total.)

Decoration composes runners around the function once, then gives the outermost runner
the function's metadata (``functools.update_wrapper``). That keeps what wrapt guarantees
(binding on methods, classmethods and staticmethods, introspection through
``__wrapped__``) without ``wrapt.FunctionWrapper``'s per-call price, which alone is more
than a whole closed breaker. Callables that are not functions (callable objects,
partials, bound methods) do go through ``wrapt.FunctionWrapper``, whose proxying they
need.

``call(fn, ...)`` / ``acall(fn, ...)`` use runners composed once around a *call target*
``_call_first(fn, *args, **kwargs)``: in that chain the function travels as the first
positional argument. A policy that looks at the call's arguments (a keyed policy) must
skip it there: ``composing_call_chain()`` tells it, while ``Policy._compose`` (the only
place that builds that chain) is composing.

Reconfiguring in place (``Policy.reconfigure``, which ``Registry.reload`` calls). A
runner reads what can change from its policy when it needs it: from the policy's
attributes, from objects it shares with the policy (a breaker's backend, a retry's
rules), or, on the hottest paths, from a one-slot holder built once (a token bucket's
taker). So changing the policy changes every runner it built, decorated functions
included, with nothing rewritten behind them.

What other modules need from a policy for that, for the HTTP integrations' per-host
copies and for shadow mode is declared here, on ``Policy``, and public:
``reconfigure(**settings)`` and ``reconfigurable``, ``clone(**changes)``,
``follower(**changes)`` (a clone that follows its policy's reconfigures and mode
switches), and ``mode`` for the policies that have a shadow mode (``ShadowMode``, in
``mode.py``). A policy that can be reconfigured lists its settings in
``reconfigurable`` and implements one hook, ``_reconfigure(settings)``.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeAlias, TypeVar, overload

import wrapt

from .._core.clock import Clock
from .._core.validation import MISSING, check_clock, check_name
from .describe import PipelineDescription, describe, plain
from .events import WATCHERS, Event, EventDetails, Listener, _subscribe, emit

__all__ = ["AsyncRunner", "Policy", "Runner"]

Runner: TypeAlias = Callable[..., Any]
AsyncRunner: TypeAlias = Callable[..., Awaitable[Any]]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
PolicyT = TypeVar("PolicyT", bound="Policy")


_composition = threading.local()
#: Held while settings change in place (``reconfigure()``, a mode switch): two changes
#: from two threads do not interleave. Reentrant: a reconfigure switches the mode too.
SETTINGS_LOCK = threading.RLock()


def composing_call_chain() -> bool:
    """True while the runners for ``call``/``acall`` are being composed: in that chain
    the protected function is the first positional argument of every runner."""
    return getattr(_composition, "call_chain", False)


def _call_first(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def _acall_first(fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
    return await fn(*args, **kwargs)


class Policy:
    """Base of every policy and of :class:`~resilience.Pipeline`.

    Subclasses implement ``_sync_runner`` and ``_async_runner`` and call ``_compose()``
    at the end of ``__init__``; those that can change settings in place list them in
    ``reconfigurable`` and implement ``_reconfigure``.
    """

    kind: ClassVar[str] = "policy"
    #: True for policies that keep state about the dependency they protect (a breaker's
    #: window, a bucket's tokens, a bulkhead's slots): the HTTP integrations give each
    #: host a copy of these (``follower()``) and share the others.
    per_dependency: ClassVar[bool] = False
    #: The settings :meth:`reconfigure` changes in place: constructor arguments, by
    #: name. Empty for a policy that cannot be reconfigured (a pipeline, a keyed policy).
    reconfigurable: ClassVar[frozenset[str]] = frozenset()
    #: Groups of settings of which a policy takes exactly one (a fallback's ``value`` or
    #: ``handler``): reconfiguring one of a group drops the others.
    _alternatives: ClassVar[tuple[frozenset[str], ...]] = ()
    #: Shadow mode (``mode="metrics_only"``), for policies that have one
    #: (:class:`~resilience._policies.mode.ShadowMode` switches it): every event says so.
    _shadow: bool = False
    #: The copies that follow this policy (``follower()``), held weakly; None: none yet.
    #: A class default, never ``self.__dict__``: on CPython 3.11+ reading an instance's
    #: ``__dict__`` materializes it and makes every attribute read of that instance
    #: slower (about 15 ns each), which the runners would pay on every call.
    _followers: weakref.WeakSet[Policy] | None = None

    name: str | None
    _clock: Clock
    _listeners: list[Listener]
    _run: Runner
    _arun: AsyncRunner
    _init_args: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Keep the constructor's arguments, as given, for clone().
        self = super().__new__(cls)
        self._init_args = (args, kwargs)
        return self

    def __init__(self, name: str | None, clock: Clock | None) -> None:
        self.name = check_name(name)
        self._clock = check_clock(clock)
        self._listeners = []
        WATCHERS.add(self)

    # -- composition -------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        """A runner ``run(*args, **kwargs)`` applying this policy around ``inner``."""
        raise NotImplementedError

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        """The async twin of ``_sync_runner``: ``await run(*args, **kwargs)``."""
        raise NotImplementedError

    def _compose(self) -> None:
        _composition.call_chain = True
        try:
            self._run = self._sync_runner(_call_first)
            self._arun = self._async_runner(_acall_first)
        finally:
            _composition.call_chain = False

    # -- using the policy --------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through this policy."""
        return self._run(fn, *args, **kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through this policy."""
        return await self._arun(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def clone(self: PolicyT, **changes: object) -> PolicyT:
        """A new policy of the same type, built from the arguments this one was built
        with, ``changes`` replacing some of them: the same settings, its own state.

        ``breaker.clone(name="payments-eu")`` is a second breaker with the same thresholds
        that opens and closes on its own. The copy is shallow: objects given to the
        constructor (a store, a clock, a backoff, a pipeline's policies) are shared, and
        listeners are not copied.
        """
        args, kwargs = self._init_args
        signature = inspect.signature(type(self))
        for param in changes:
            if param not in signature.parameters or signature.parameters[param].kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                raise TypeError(
                    f"{type(self).__name__}.clone() got an unexpected argument {param!r}"
                )
        bound = signature.bind(*args, **kwargs)
        bound.arguments.update(changes)
        return type(self)(*bound.args, **bound.kwargs)

    def describe(self) -> PipelineDescription:
        """The policies a call goes through, outermost first (this one, or a pipeline's),
        with the settings in force, and warnings about known order mistakes."""
        return describe(self)

    def _description(self) -> dict[str, Any]:
        """This policy's settings for ``describe()`` (hook: add what it learned): its
        constructor arguments in force, defaults filled in, as plain values (``name``
        and ``clock`` left out, and arguments not given that have no default)."""
        signature = inspect.signature(type(self))
        settings: dict[str, Any] = {}
        for key, value in self._arguments().items():
            kind = signature.parameters[key].kind
            if key in ("name", "clock") or value is MISSING or kind is kind.VAR_POSITIONAL:
                continue
            settings[key] = plain(value)
        live = self._live_settings()
        settings.update({key: plain(value) for key, value in live.items() if key in settings})
        return settings

    def _live_settings(self) -> dict[str, Any]:
        """Settings read from the policy itself, where they may differ from the
        constructor's arguments (a default filled in, a reload): for ``describe()``."""
        return {}

    def _arguments(self) -> dict[str, object]:
        """The constructor's arguments in force, by name: those it was given (or that
        ``reconfigure()`` or a mode switch set since), and the defaults of the others."""
        args, kwargs = self._init_args
        bound = inspect.signature(type(self)).bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    # -- settings changed in place (reconfigure, Registry.reload) -----------------------

    def reconfigure(self, **settings: object) -> None:
        """Change settings in place, keeping the policy's state.

        ``settings`` are constructor arguments, by keyword, among those the policy lists
        in ``reconfigurable`` (identity arguments such as ``name``, ``key``, ``store``
        and ``clock`` are not); a setting not given keeps its value. Every value is
        checked as the constructor checks it, before anything changes: a bad one raises
        ``ValueError`` or ``TypeError`` naming it, and the policy is left as it was.

        The new settings apply from the next call on, also to functions decorated
        before, and to the copies that follow this policy (:meth:`follower`: the HTTP
        integrations' per-host copies); later :meth:`clone` calls and ``describe()``
        use them. ``Registry.reload`` calls this method. A policy that cannot change
        in place (a pipeline, a keyed policy) raises ``TypeError``.
        """
        cls = type(self).__name__
        if not self.reconfigurable:
            raise TypeError(
                f"{cls} cannot be reconfigured in place: build a new one "
                f"(or clone() it with other settings)"
            )
        parameters = inspect.signature(type(self)).parameters
        for key in settings:
            if key in self.reconfigurable:
                continue
            if key in parameters:
                raise TypeError(
                    f"{cls}.reconfigure() cannot change {key!r} in place: build a new "
                    f"{cls} (or clone() this one) instead"
                )
            raise TypeError(
                f"{cls}.reconfigure() got an unexpected setting {key!r} (it can change: "
                f"{', '.join(sorted(self.reconfigurable))})"
            )
        if not settings:
            return
        dropped = {
            key for group in self._alternatives if group & settings.keys() for key in group
        } - settings.keys()
        with SETTINGS_LOCK:
            # This policy first: if a value is bad, it raises before anything changed
            # (the copies, built from the same arguments, take what this policy took).
            for target in (self, *self._following()):
                arguments = target._arguments_in_force()
                for key in dropped:
                    arguments[key] = parameters[key].default
                arguments.update(settings)
                target._reconfigure(arguments)
                target._remember_settings(settings, dropped)

    def _arguments_in_force(self) -> dict[str, object]:
        """What ``reconfigure()`` keeps of the settings it is not given: the
        constructor's arguments in force (hook: a setting switched at run time)."""
        return self._arguments()

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        """Hook of ``reconfigure()``: take ``arguments`` (every constructor argument, as
        in force after the change) in place, keeping the state. Check every value before
        changing anything: a bad one raises, naming it, and leaves the policy as it was."""
        raise NotImplementedError  # pragma: no cover - only for policies that list settings

    def _remember_settings(
        self, changes: Mapping[str, object], dropped: Iterable[str] = ()
    ) -> None:
        """Remember constructor arguments changed in place (``reconfigure()``, a mode
        switch), ``dropped`` ones back to their defaults: later clones are built with
        them, and ``describe()`` shows them."""
        args, kwargs = self._init_args
        bound = inspect.signature(type(self)).bind(*args, **kwargs)
        for key in dropped:
            bound.arguments.pop(key, None)
        bound.arguments.update(changes)
        self._init_args = (bound.args, bound.kwargs)

    def follower(self: PolicyT, **changes: object) -> PolicyT:
        """A copy that stands in for this policy: ``clone(**changes)``, listened to by
        the listeners this policy has now, and following it from then on: its
        :meth:`reconfigure` calls and ``mode`` switches change the copy too.

        The HTTP integrations give each host such a copy of the policies that keep
        state about their dependency, so a config reload reaches every host. The
        policy holds its followers weakly: a copy nobody else holds goes away.
        """
        copy = self.clone(**changes)
        for listener in tuple(self._listeners):
            copy.listen(listener)
        if self._followers is None:
            self._followers = weakref.WeakSet()
        self._followers.add(copy)
        return copy

    def _following(self) -> list[Policy]:
        """The live copies that follow this policy (``follower()``)."""
        followers = self._followers
        return [] if followers is None else list(followers)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Send this policy's events to ``listener``; returns a function that stops it."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        return _subscribe(self._listeners, listener, self._listeners_changed)

    def _listeners_changed(self) -> None:
        """Global or own listeners came or went (hook for policies caching a flag)."""

    def _emit_event(
        self,
        type_: str,
        details: EventDetails | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """Build this policy's event and deliver it; call only when someone listens."""
        emit(
            self._listeners,
            Event(
                self.kind,
                self.name,
                type_,
                self._clock.monotonic(),
                details,
                exception,
                self._shadow,
            ),
        )

    @overload
    def __call__(self, fn: classmethod[T, ..., R]) -> classmethod[T, ..., R]: ...
    @overload
    def __call__(self, fn: staticmethod[..., R]) -> staticmethod[..., R]: ...
    @overload
    def __call__(self, fn: F) -> F: ...
    def __call__(self, fn: Any) -> Any:
        """Decorate a function, coroutine function, method, classmethod or staticmethod."""
        return decorate(self, fn)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    if isinstance(fn, type) or inspect.isfunction(fn):
        return False  # calling a class makes an instance, whatever its __call__ does
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return inspect.iscoroutinefunction(call)


def decorate(policy: Policy, fn: Any) -> Any:
    """Wrap ``fn`` so that every call goes through ``policy``."""
    if isinstance(fn, (classmethod, staticmethod)):
        return type(fn)(decorate(policy, fn.__func__))
    if not callable(fn):
        raise TypeError(f"{type(policy).__name__} can only decorate callables, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{type(policy).__name__} cannot decorate generator function "
            f"{getattr(fn, '__qualname__', fn)!r}: its body runs after the call returns, "
            "outside the policy; decorate the function that consumes it instead"
        )
    is_async = _is_async_callable(fn)

    if inspect.isfunction(fn):
        run = policy._async_runner(fn) if is_async else policy._sync_runner(fn)
        if run is fn:  # an empty pipeline: still return a new function, never alter fn
            run = _passthrough(fn, is_async)
        return functools.update_wrapper(run, fn)

    # Other callables keep a wrapt proxy (attributes, isinstance and repr pass through).
    # A descriptor (something that binds, like a method) needs FunctionWrapper's binding;
    # anything else gets a lighter ObjectProxy whose __call__ is a coroutine function
    # for async callables, so frameworks checking ``iscoroutinefunction(obj.__call__)``
    # still see it as async.
    if hasattr(type(fn), "__get__"):
        if is_async:

            async def async_proxy(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return await policy.acall(wrapped, *args, **kwargs)

            return wrapt.FunctionWrapper(fn, async_proxy)

        def proxy(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            return policy.call(wrapped, *args, **kwargs)

        return wrapt.FunctionWrapper(fn, proxy)
    return (_AsyncCallableProxy if is_async else _CallableProxy)(fn, policy)


if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:  # subscripting at run time needs a recent wrapt; only the checker needs it
    _ProxyBase = wrapt.ObjectProxy


class _CallableProxy(_ProxyBase):
    """A callable object seen through a policy."""

    def __init__(self, wrapped: Any, policy: Policy) -> None:
        super().__init__(wrapped)
        self._self_policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_policy.call(self.__wrapped__, *args, **kwargs)


class _AsyncCallableProxy(_ProxyBase):
    """An async callable object seen through a policy."""

    def __init__(self, wrapped: Any, policy: Policy) -> None:
        super().__init__(wrapped)
        self._self_policy = policy

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_policy.acall(self.__wrapped__, *args, **kwargs)


def _passthrough(fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def async_passthrough(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)

        return async_passthrough

    def passthrough(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return passthrough
