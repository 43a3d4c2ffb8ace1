"""Load for lz4-frame-decompress-error: each user fetches the damaged frame once (GET /sample),
then uploads it again and again (tag `upload`); 422 (it does not decompress) is the expected
answer here, not a failure.

Imports only Locust and the standard library: run it as a subprocess, never import it.
"""

from __future__ import annotations

from locust import FastHttpUser, tag, task


class UploadUser(FastHttpUser):
    frame = b""

    def on_start(self) -> None:
        self.frame = self.client.get("/sample").content or b""

    @tag("upload")
    @task
    def upload(self) -> None:
        with self.client.post(
            "/decompress",
            data=self.frame,
            headers={"Content-Type": "application/octet-stream"},
            catch_response=True,
        ) as response:
            if response.status_code == 422:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")
