"""The worker side of a scoring run, as ``evaluation.runner`` is a generation run's: prepare the work directory
(the answers to score, and the reward model's files from the artifact store, checked against their sha256),
fork the scoring child from the training fork server (``evaluation.score``), watch it, pump its scores into
``RewardScore`` rows and record how it ended. The work directory is removed when the run ends."""

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from core.errors import DomainError
from core.version import code_version
from evaluation import launch, services
from evaluation.models import ScoringRun
from evaluation.scoring_runs import answers_of
from training.children import Child, ForkedChild, fork_context
from training.environment import library_versions
from training.models import BaseModelState, JobState
from training.runner import base_model_check_here, stage_trained, worker_facts
from training.watching import HeartbeatThread, Tail, exit_reason, first_error_line, supervise

logger = logging.getLogger(__name__)

WORK_PREFIX = "scoring-"


def remove_work_of_ended_runs() -> list[str]:
    """Delete the work directories of scoring runs that are no longer active (a worker killed with its child);
    those of active runs are kept, as other workers may share the work directory."""
    work = Path(settings.TRAINING_WORK_DIR)
    found = {path.name: path for path in work.glob(f"{WORK_PREFIX}*") if path.is_dir()}
    ids = {name: int(name[len(WORK_PREFIX) :]) for name in found if name[len(WORK_PREFIX) :].isdigit()}
    active = set(
        ScoringRun.objects.filter(pk__in=ids.values(), state__in=(JobState.QUEUED, JobState.RUNNING)).values_list(
            "pk", flat=True
        )
    )
    removed = [name for name, pk in ids.items() if pk not in active]
    for name in removed:
        shutil.rmtree(found[name], ignore_errors=True)
    return removed


@dataclass
class ScoringWatch:
    """The child's events and scores, pumped into the database."""

    run: ScoringRun
    events: Tail
    outputs: Tail
    log: Tail
    error: str = ""
    last_lines: list[str] = field(default_factory=list)
    first_error: str = ""

    def pump(self, child_pid: int | None = None, final: bool = False) -> bool:
        """Move new scores, forward-pass time and phase to the database; returns whether to stop the child."""
        phase, seconds = None, 0.0
        for line in self.events.read(final):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "batch":
                seconds += float(event.get("seconds", 0.0))
            elif kind == "phase":
                phase = str(event["phase"])
            elif kind == "error":
                self.error = str(event["message"])
        scores = [json.loads(line) for line in self.outputs.read(final)]
        lines = [line for line in self.log.read(final) if line.strip()]
        self.last_lines = (self.last_lines + lines)[-20:]
        self.first_error = self.first_error or first_error_line(lines)
        return services.scoring_run_progress(
            run=self.run, scores=scores, seconds=seconds, phase=phase, child_pid=child_pid
        )


def run_scoring(run_id: int, worker: str) -> str:
    """Run one scoring run to its end on this worker; returns the final state. Never raises for a failure."""
    try:
        facts = worker_facts()
    except Exception as exc:
        facts, broken = {"versions": library_versions(), "hardware": {}}, f"This worker cannot score: {exc}"
    else:
        broken = ""
    environment = {"versions": facts["versions"], "hardware": facts["hardware"], "code_version": code_version()}
    run = services.scoring_run_begin(run_id=run_id, worker=worker, environment=environment)
    if run is None:
        return "skipped"
    if broken:
        services.scoring_run_finish(run=run, state=JobState.FAILED, reason=broken)
        return JobState.FAILED
    work = Path(settings.TRAINING_WORK_DIR) / run.work_name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    beat = HeartbeatThread(run.pk, beat=lambda pk: services.scoring_run_beat(run_id=pk))
    beat.start()
    try:
        reward_model = run.reward_model
        model = reward_model.base_model
        if reward_model.sha256 != run.reward_model_sha256:
            raise DomainError(f"{reward_model} no longer has the sha256 the run was defined with; not scoring.")
        if model.state != BaseModelState.READY or model.content_hash != reward_model.base_model_hash:
            raise DomainError(
                f"The base model {model} changed after {reward_model} was trained on it "
                f"({model.get_state_display().lower()}, hash {model.content_hash[:12]}…); not scoring."
            )
        base_model_check_here(model)
        adapter_dir = stage_trained(reward_model, work / "reward-model")
        answers = answers_of(run)
        with (work / "answers.jsonl").open("w", encoding="utf-8") as stream:
            for answer in answers:
                stream.write(json.dumps(answer.as_line()) + "\n")
        # Answers scored meanwhile (by another run of the same reward model) are left out: the total says so.
        services.scoring_run_progress(run=run, scores=[], total=len(answers), phase="loading reward model")
        spec = {
            "run_id": run.pk,
            "model_dir": model.path,
            "adapter_dir": str(adapter_dir),
            "batch_size": run.batch_size,
            "work_dir": str(work),
            "supervisor_pid": os.getpid(),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
        watch = ScoringWatch(
            run=run,
            events=Tail(work / "events.jsonl"),
            outputs=Tail(work / "scores.jsonl"),
            log=Tail(work / "output.log"),
        )
        process = fork_context().Process(target=launch.scoring_child, args=(str(spec_path),), name=work.name)
        process.start()
        state, reason = _supervise(ForkedChild(process=process), watch)
        result = json.loads((work / "result.json").read_text()) if state == JobState.SUCCEEDED else {}
        services.scoring_run_finish(run=run, state=state, reason=reason, result=result)
    except Exception as exc:
        logger.exception("scoring run %s failed in its supervisor", run_id)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        services.scoring_run_finish(run=run, state=JobState.FAILED, reason=message)
    finally:
        beat.stop()
        shutil.rmtree(work, ignore_errors=True)
    run.refresh_from_db(fields=["state"])
    return str(run.state)


def _supervise(child: Child, watch: ScoringWatch) -> tuple[str, str]:
    """Watch the child to its end (``training.watching.supervise``) and say how it ended."""
    code, cancelled = supervise(child, watch.pump, f"scoring run {watch.run.pk}")
    if cancelled:
        run = ScoringRun.objects.select_related("cancel_requested_by").get(pk=watch.run.pk)
        if run.cancel_requested_by is None:
            return JobState.FAILED, "The run ended while it scored; the scoring process was stopped."
        return JobState.CANCELLED, f"Cancelled by {run.cancel_requested_by.username} after {run.done} answers."
    if code == 0 and (Path(watch.events.path).parent / "result.json").exists():
        return JobState.SUCCEEDED, ""
    return JobState.FAILED, exit_reason(code, watch, what="scoring")
