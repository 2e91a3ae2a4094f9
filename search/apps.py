from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # One FAISS thread per process: web and worker processes already run side by side, and
        # OpenMP threads fighting over the same cores made single queries ~10x slower (bench/README.md).
        # Torch likewise: concurrent requests and the worker already fill the cores, so extra intra-op
        # threads only add contention. Training runs pick their own count (training/job.py).
        # BLAS and OpenCV likewise: OpenBLAS's spinning threads on the small SIFT matching products cost
        # a third of a search's CPU time (~110 of ~310 ms) for no shorter wall time (bench/README.md).
        import cv2
        import faiss
        import torch
        from django.conf import settings
        from threadpoolctl import threadpool_limits

        # Registers every Celery task of the app in every process, web too (flatsite.jobs.routes names them).
        from flatsite.jobs import hooks
        from search.clusters import tasks as clusters_tasks  # noqa: F401
        from search.listings import ingest, selectors
        from search.listings import tasks as listings_tasks  # noqa: F401
        from search.models import Job
        from search.ops import tasks as ops_tasks  # noqa: F401

        # What the job platform shows and cleans up of this app's jobs: an ingest job's photos.
        hooks.details_register(selectors.job_details, fresh_for=(Job.Kind.INGEST,))
        hooks.abandoned_register(ingest.job_abandoned)

        faiss.omp_set_num_threads(settings.FLATSITE_FAISS_THREADS)
        torch.set_num_threads(settings.FLATSITE_TORCH_THREADS or 1)
        threads = settings.FLATSITE_BLAS_THREADS
        threadpool_limits(limits=threads, user_api="blas")
        cv2.setNumThreads(threads)
