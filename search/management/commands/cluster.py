"""Clustering run: python manage.py cluster [--encoder NAME] [--inline] [--json] [--param KEY=VALUE ...]."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.clusters import runs as clusters
from search.clusters import selectors as selectors_clusters
from search.models import ClusteringRun, Job


class Command(BaseCommand):
    help = "Cluster all photos with features (in a worker, or here with --inline); --json prints assignments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--encoder", default=None, help="encoder whose features to cluster")
        parser.add_argument("--inline", action="store_true", help="run here instead of in a Celery worker")
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object: params, summary, assignments"
        )
        parser.add_argument("--min-cluster-size", type=int, default=None)
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a ClusterConfig field (value parsed as JSON, e.g. seed=3, outlier_z=null); repeatable",
        )
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the worker")

    def handle(self, *args: Any, **opts: Any) -> None:
        params = self._params(opts)
        try:
            job = clusters.clustering_start(
                encoder=opts["encoder"], params=params, enqueue=not opts["inline"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self._say(opts, f"clustering job #{job.pk} ({job.params['encoder']})")
        started = time.monotonic()
        job = clusters.clustering_run_inline(job.pk) if opts["inline"] else self._wait(job.pk, opts)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"clustering job #{job.pk} {job.status}: {job.error or job.message}")
        run = ClusteringRun.objects.get(pk=job.result["run"])
        if opts["json"]:
            self.stdout.write(json.dumps(self._payload(run, job)))
            return
        self._report(run, time.monotonic() - started)

    def _params(self, opts: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for item in opts["param"]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise CommandError(f"--param wants KEY=VALUE, got {item!r}")
            try:
                params[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                params[key.strip()] = value
        if opts["min_cluster_size"] is not None:
            params["min_cluster_size"] = opts["min_cluster_size"]
        return params

    def _say(self, opts: dict[str, Any], text: str) -> None:
        # With --json, stdout carries the JSON object alone.
        (sys.stderr if opts["json"] else self.stdout).write(text + "\n")

    def _wait(self, job_id: int, opts: dict[str, Any]) -> Job:
        deadline = time.monotonic() + opts["timeout"]
        last = ""
        while time.monotonic() < deadline:
            job = Job.objects.get(pk=job_id)
            line = f"{job.percent:3d}% {job.message}"
            if line != last:
                self._say(opts, line)
                last = line
            if job.is_final:
                return job
            time.sleep(0.5)
        raise CommandError(
            f"timed out waiting for job #{job_id} (is a Celery worker running? or use --inline)"
        )

    def _payload(self, run: ClusteringRun, job: Job) -> dict[str, Any]:
        return {
            "run": run.pk,
            "job": job.pk,
            "encoder": run.encoder,
            "current": run.is_current,
            "params": run.params,
            "summary": run.summary,
            "assignments": selectors_clusters.run_assignments(run),
        }

    def _report(self, run: ClusteringRun, seconds: float) -> None:
        summary = run.summary
        self.stdout.write(
            f"run #{run.pk}: {run.photo_count} photos, {run.cluster_count} clusters, "
            f"{run.noise_count} noise ({run.noise_share:.1%}) in {seconds:.1f} s"
        )
        if summary.get("previous_run"):
            self.stdout.write(
                f"carried over from run #{summary['previous_run']}: {summary.get('carried', 0)} clusters, "
                f"{summary.get('moves_applied', 0)} moves, "
                f"{summary.get('cannot_links_applied', 0)} kept out, "
                f"{summary.get('conflict_count', 0)} conflicts"
            )
            for conflict in summary.get("conflicts", [])[:20]:
                self.stdout.write(f"  conflict: {conflict['text']}")
