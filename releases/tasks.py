from typing import Any

from celery import shared_task

from releases.services import release_build


@shared_task(name="releases.release_build", bind=True, max_retries=None)
def release_build_task(self: Any, release_id: int) -> str:
    """Build a release on a worker. Builds of one project run one at a time (the sticky evaluation split
    depends on the releases before): while another runs, this one waits and retries."""
    release = release_build(release_id=release_id)
    if release is None:
        raise self.retry(countdown=10)
    return str(release.state)
