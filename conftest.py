"""Pytest wiring: the suite's options, its session fixtures, and xdist-safe evidence collection.

Workers send the claims they checked and the runs they used to the controller through
xdist's `workeroutput`; the controller (or a plain single process) writes one evidence file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from fixtures import backend
from fixtures.evidence import USER_CACHE, Claim, merge_runs, outcome_of, write_evidence
from fixtures.profiles import PROFILES
from fixtures.stats import ALPHA, sequential_plan

CLAIM_KEY = pytest.StashKey[Claim]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mnist-claims")
    group.addoption("--mnist-dir", default=os.environ.get("MNIST_DIR"),
                    help="directory with the four MNIST IDX .gz files or mnist.npz (env MNIST_DIR); "
                         "default: Keras's download")
    group.addoption("--mnist-no-verify", action="store_true", default=bool(os.environ.get("MNIST_NO_VERIFY")),
                    help="accept MNIST files whose checksums differ from the originals (env MNIST_NO_VERIFY=1)")
    group.addoption("--claims-profile", choices=["notebook", "smoke"], default="notebook",
                    help="notebook: the notebook's exact settings (default); smoke: tiny subset, not evidence")
    group.addoption("--seeds", type=_seed_option, default=3,
                    help="seeds per claim, 0..N-1 (default 3; 1: one cheap run per model, every statistical claim "
                         "inconclusive); 'auto': sequential looks at 3, 5, 8, ... seeds up to --max-seeds, each claim "
                         "stopping once it decides")
    group.addoption("--max-seeds", type=int, default=8, help="largest seed count of --seeds auto (default 8)")
    group.addoption("--strict-claims", action="store_true", help="fail inconclusive claims instead of skipping")
    group.addoption("--claims-cache", default=os.environ.get("MNIST_CLAIMS_CACHE"),
                    help="training-run cache directory (env MNIST_CLAIMS_CACHE); default: pytest's cache, "
                         f"cleared by --cache-clear (with -p no:cacheprovider: {USER_CACHE}/training-runs)")
    group.addoption("--claims-evidence", default=os.environ.get("MNIST_CLAIMS_EVIDENCE"),
                    help="where evidence.json is written (env MNIST_CLAIMS_EVIDENCE); default: pytest's cache "
                         f"(with -p no:cacheprovider: {USER_CACHE}/claims-evidence)")
    group.addoption("--fresh-evidence", action="store_true",
                    help="start evidence.json afresh instead of keeping the claims this session does not run")
    group.addoption("--keras-backend", choices=backend.BACKENDS,
                    default=os.environ.get("KERAS_BACKEND") or backend.DEFAULT,
                    help="Keras backend to train and evaluate on (env KERAS_BACKEND); default: tensorflow")
    group.addoption("--op-determinism", choices=["auto", "on", "off"], default="auto",
                    help="deterministic ops of the backend; auto: on, except TensorFlow on a GPU (default)")
    group.addoption("--model", action="append", default=[], metavar="NAME=SOURCE",
                    help="replace the notebook's model NAME (improved_cnn, basic_cnn, mlp) by a student's: "
                         "SOURCE is path/to/file.py:function or path/to/model.keras (repeatable)")
    group.addoption("--backend-threads", type=_threads_option, default="auto",
                    help="CPU threads of each process's backend: auto (default): cores // workers under xdist -n, "
                         "the backend's default without; N: N threads; 0: the backend's default everywhere")


def _threads_option(text: str) -> str:
    """--backend-threads: 'auto' or a whole number >= 0."""
    if text == "auto" or (text.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"--backend-threads must be auto or a whole number >= 0, got {text!r}")


def _seed_option(text: str) -> int | str:
    """--seeds: 'auto', or a whole number of at least 1 (one seed has no spread: statistical claims stay inconclusive)."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be at least 1, got {n}")
    return n


def seed_plan(config: pytest.Config) -> list[tuple[int, float]]:
    """The looks (seed count, level) every statistical claim decides at: one at fixed --seeds."""
    if config.option.seeds == "auto":
        try:
            return sequential_plan(config.option.max_seeds)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
    return [(config.option.seeds, ALPHA)]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _cache_dir(config: pytest.Config, option: str, name: str) -> Path:
    """The option's directory, else pytest's cache, else (cache plugin disabled) the per-user cache dir."""
    chosen = config.getoption(option)
    if chosen:
        path = Path(chosen).expanduser().resolve()
    elif hasattr(config, "cache"):
        path = Path(config.cache.mkdir(name))
    else:
        path = USER_CACHE / name
    path.mkdir(parents=True, exist_ok=True)
    return path


class EvidenceSession:
    """Collects claims, runs and environment from this process and, on the controller, its workers."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.directory = _cache_dir(config, "--claims-evidence", "claims-evidence")
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.claims: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.environment: dict[str, Any] = {}
        self.store = None  # the RunStore, once a test asked for one
        self.mnist = None
        self.workers = 0
        self.afresh: str | None = None  # why the evidence file started afresh, once written

    def local_environment(self) -> dict[str, Any]:
        """Backend versions, device, determinism and data of this process, if it loaded Keras and MNIST."""
        if "keras" not in sys.modules:
            return {}
        env: dict[str, Any] = {"versions": backend.library_versions(), "device": backend.device_description()}
        env["threads"] = backend.threads()
        if self.store is not None:
            env["deterministic"] = self.store.deterministic
        if self.mnist is not None:
            env["data"] = {"source": self.mnist.source, "fingerprint": self.mnist.fingerprint,
                           "checksums": dict(self.mnist.checksums)}
        return env

    def local_runs(self) -> list[dict[str, Any]]:
        return [run.to_evidence() for run in self.store.used.values()] if self.store else []

    def absorb(self, output: dict[str, Any]) -> None:
        """Take a worker's share (sent as JSON strings through execnet)."""
        self.workers += 1
        self.claims += json.loads(output["claims"])
        self.runs += json.loads(output["runs"])
        self.environment = self.environment or json.loads(output["environment"])

    def write(self) -> Path:
        options = self.config.option
        session = {
            "started": self.started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "profile": options.claims_profile,
            "seeds": sorted({s for c in self.claims for s in c["seeds"]}),
            "seed_plan": seed_plan(self.config),
            "strict": options.strict_claims,
            "workers": self.workers,
            **self.environment,
        }
        path, self.afresh = write_evidence(self.directory, session, self.runs, self.claims, fresh=options.fresh_evidence)
        return path


EVIDENCE_KEY = pytest.StashKey[EvidenceSession]()
SESSION_ID = "mnist_claims_session"
SESSION_ID_KEY = pytest.StashKey[str]()


def _is_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


def _workers(config: pytest.Config) -> int:
    """The number of xdist workers of this session (seen from the controller or a worker); 0 without xdist."""
    if _is_worker(config):
        return config.workerinput["workercount"]
    return (config.getoption("numprocesses", None) or 0) if _is_controller(config) else 0


def _threads(config: pytest.Config) -> int:
    """This session's backend threads per worker (--backend-threads); 0: the backend's default."""
    return backend.threads_for(config.option.backend_threads, _workers(config), backend.cpu_cores())


def pytest_configure(config: pytest.Config) -> None:
    # Before Keras is first imported (here and in every xdist worker, which inherits the
    # environment and runs this too): the backend, and the settings it reads when it starts.
    # The xdist controller trains nothing: its threads (and the environment its workers inherit) stay as they are.
    threads = 0 if _is_controller(config) else _threads(config)
    backend.prepare(config.option.keras_backend, config.option.op_determinism, threads)
    config.stash[EVIDENCE_KEY] = EvidenceSession(config)
    config.stash[SESSION_ID_KEY] = config.workerinput[SESSION_ID] if _is_worker(config) else uuid.uuid4().hex[:12]
    config.pluginmanager.register(TrainingPlan(config), "mnist-claims-training-plan")
    register_submissions(config.option.model)


def register_submissions(options: list[str]) -> None:
    """`--model NAME=SOURCE`: load and check each student's model and let it replace the notebook's NAME
    in this process (xdist workers run this too); a bad one is a one-line usage error."""
    if not options:
        return
    from fixtures import models, submissions

    for option in options:
        name, sep, source = option.partition("=")
        if not sep or name not in models.MODELS:
            raise pytest.UsageError(f"--model {option}: expected NAME=SOURCE with NAME one of "
                                    f"{', '.join(sorted(models.MODELS))}")
        try:
            submission = submissions.load(source)
        except submissions.SubmissionError as e:
            raise pytest.UsageError(f"--model {name}: {e}") from None
        models.replace_model(name, submission.builder, submission.optimizer, source, submission.digest)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Controller side of xdist: give each worker the session's id, which names the plan file."""
    node.workerinput[SESSION_ID] = node.config.stash[SESSION_ID_KEY]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Make each claim selectable by its id with -k."""
    for item in items:
        marker = item.get_closest_marker("claim")
        if marker and marker.args:
            item.extra_keyword_matches.add(marker.args[0])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    claim = item.stash.get(CLAIM_KEY, None)
    if claim is not None and (report.when == "call" or report.outcome != "passed"):
        claim.record["outcome"] = outcome_of(report)
    return report


def pytest_runtest_teardown(item: pytest.Item) -> None:
    claim = item.stash.get(CLAIM_KEY, None)
    if claim is not None and claim.record["verdict"] is not None:
        item.config.stash[EVIDENCE_KEY].claims.append(claim.record)


def pytest_testnodedown(node: Any, error: Any) -> None:
    """Controller side of xdist: absorb what a finished worker recorded."""
    output = getattr(node, "workeroutput", None)
    if output and "claims" in output:
        node.config.stash[EVIDENCE_KEY].absorb(output)


def pytest_sessionfinish(session: pytest.Session) -> None:
    evidence = session.config.stash[EVIDENCE_KEY]
    if _is_worker(session.config):
        session.config.workeroutput.update(
            claims=json.dumps(evidence.claims),
            runs=json.dumps(evidence.local_runs()),
            environment=json.dumps(evidence.local_environment()),
        )
        return
    evidence.runs += evidence.local_runs()
    evidence.environment = evidence.environment or evidence.local_environment()
    if evidence.claims:
        evidence.write()


class TrainingPlan:
    """Plugin: workers and the single process train the selected claims' declared runs before the first test,
    longest first (fixtures.plan); the xdist controller, or the single process, shows their progress
    (fixtures.progress) until the first test reports, then one line per run that finishes later."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.progress: Any = None
        self.watcher: Any = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        if not self.config.option.collectonly:
            if _is_controller(self.config):
                from fixtures.plan import plan_path

                self._show(plan_path(_cache_dir(self.config, "--claims-cache", "training-runs"),
                                     self.config.stash[SESSION_ID_KEY]))
            else:
                self._train(session)
        try:
            return (yield)
        finally:
            self.pytest_runtest_logreport()
            if self.progress is not None:
                self.progress.plan_path.unlink(missing_ok=True)

    def pytest_runtest_logreport(self, report: Any = None) -> None:
        """Once tests report, the live display gives way to pytest's output."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.progress is None or self.config.pluginmanager.getplugin("terminalreporter") is None:
            return
        terminal = self.config.get_terminal_writer()
        for line in self.progress.poll():
            if terminal.width_of_current_line:  # after progress dots
                terminal.line()
            terminal.line(line)

    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """Warn when a claim used runs its marker's `runs=` does not declare: the plan could not train them ahead."""
        claim, store = item.stash.get(CLAIM_KEY, None), self.config.stash[EVIDENCE_KEY].store
        if claim is None or store is None or not claim.record.get("runs"):
            return
        marker = item.get_closest_marker("claim")
        declared = {spec.key for fn in marker.kwargs.get("runs", ()) for spec in fn(store, claim.record["seeds"])}
        if undeclared := [key for key in claim.record["runs"] if key not in declared]:
            labels = ", ".join(store.used[key].spec.label if key in store.used else key for key in undeclared)
            warnings.warn(pytest.PytestWarning(
                f"claim {claim.id} used {len(undeclared)} run(s) its claim marker's runs= does not declare ({labels}); "
                "declare them so that the session plan trains them before the tests"))

    def _train(self, session: pytest.Session) -> None:
        from fixtures import plan

        claims = [item for item in session.items
                  if (marker := item.get_closest_marker("claim")) is not None and marker.kwargs.get("runs")]
        if not claims:
            return  # nothing declared: load neither MNIST nor Keras
        try:
            store = _store(self.config, _mnist(self.config))
            seeds = list(range(seed_plan(self.config)[0][0]))
            todo = plan.make_plan(plan.declared_specs(claims, store, seeds), store)
        except Exception:  # noqa: BLE001 - bad data or a broken declaration: the tests that need it fail with it
            return
        path = plan.plan_path(store.root, self.config.stash[SESSION_ID_KEY])
        plan.publish(todo, store, path, workers=max(1, _workers(self.config)))
        if not _is_worker(self.config):
            self._show(path)
        try:
            plan.train(todo, store)
        finally:
            self.pytest_runtest_logreport()

    def _show(self, path: Path) -> None:
        from fixtures.progress import Progress, Watcher

        self.progress = Progress(path, path.parent.parent)
        self.watcher = Watcher(self.progress, sys.stdout).start()


def pytest_report_header(config: pytest.Config) -> list[str]:
    cache = _cache_dir(config, "--claims-cache", "training-runs")
    plan = ", ".join(f"{n} (alpha {alpha:.3g})" for n, alpha in seed_plan(config))
    replaced = [f"mnist-claims: --model {option}" for option in config.option.model]
    return [*replaced, f"mnist-claims: backend={config.option.keras_backend} "
            f"profile={config.option.claims_profile} seeds={config.option.seeds}: looks at {plan} "
            f"runs cache={cache} (training progress: tail -f {cache}/*.log)",
            f"mnist-claims: backend threads per worker={_threads(config) or 'backend default'} (--backend-threads "
            f"{config.option.backend_threads}, {_workers(config)} workers, {backend.cpu_cores()} cores)",
            f"mnist-claims: evidence={config.stash[EVIDENCE_KEY].directory / 'evidence.json'}"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    evidence = config.stash[EVIDENCE_KEY]
    runs = merge_runs(evidence.runs)
    if runs:
        terminalreporter.section("training runs used")
        trained = [r for r in runs if r["source"] == "trained"]
        for r in runs:
            terminalreporter.line(f"{r['source']:>7}  {r['wall_s']:8.1f}s  {r['s_per_epoch']:6.2f} s/epoch  "
                                  f"{r['label']}  [{r['key']}]")
        terminalreporter.line(f"{len(trained)} trained ({sum(r['wall_s'] for r in trained):.0f}s), "
                              f"{len(runs) - len(trained)} loaded from cache")
    if evidence.claims:
        kept = f"started afresh ({evidence.afresh})" if evidence.afresh else "claims not run now kept from earlier sessions"
        terminalreporter.line(f"evidence: {evidence.directory / 'evidence.json'} ({kept})")


def _mnist(config: pytest.Config) -> Any:
    """MNIST, loaded once per process (by the training plan or the first test); raises MnistError."""
    from fixtures.data import load_mnist

    evidence = config.stash[EVIDENCE_KEY]
    if evidence.mnist is None:
        evidence.mnist = load_mnist(config.option.mnist_dir, verify=not config.option.mnist_no_verify)
    return evidence.mnist


def _store(config: pytest.Config, mnist: Any) -> Any:
    """The process's RunStore over `mnist`, made once (by the training plan or the first test)."""
    from fixtures.runs import RunStore

    evidence = config.stash[EVIDENCE_KEY]
    if evidence.store is None:
        evidence.store = RunStore(_cache_dir(config, "--claims-cache", "training-runs"), mnist,
                                  PROFILES[config.option.claims_profile],
                                  deterministic=backend.resolve_determinism(config.option.op_determinism))
    return evidence.store


@pytest.fixture(scope="session")
def mnist(pytestconfig: pytest.Config) -> Any:
    """MNIST as the notebook preprocesses it; a missing or corrupt dataset fails with one clear line."""
    from fixtures.data import MnistError

    try:
        return _mnist(pytestconfig)
    except MnistError as e:
        problem = str(e)
    # Outside the except block: xdist would otherwise print the whole chain of causes above the line.
    pytest.fail(f"MNIST: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def seeds(pytestconfig: pytest.Config) -> list[int]:
    """Seeds 0..N-1 of the first look (all of --seeds N), so that more seeds reuse the cached runs of fewer."""
    return list(range(seed_plan(pytestconfig)[0][0]))


@pytest.fixture(scope="session")
def runs(pytestconfig: pytest.Config, mnist: Any) -> Any:
    """The training-run store: `runs.get(runs.spec(...))` trains once, then loads from the cache."""
    return _store(pytestconfig, mnist)


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> Claim:
    """The claim under test: end the test with `claim.check(verdict, rule=..., summary=...)`."""
    config = request.config
    handle = Claim(request.node, config.stash[EVIDENCE_KEY].directory, strict=config.option.strict_claims,
                   is_evidence=PROFILES[config.option.claims_profile].is_evidence, plan=seed_plan(config))
    request.node.stash[CLAIM_KEY] = handle
    return handle
