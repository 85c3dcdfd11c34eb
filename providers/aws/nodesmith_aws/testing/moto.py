"""A moto server in server mode on 127.0.0.1 (a free port), and aioboto3 sessions pointed at it.

Fed by tests (usually one server per test session, `MotoServer.reset` between tests); the provider under
test talks to it over HTTP exactly as it would to AWS, with dummy credentials and ``endpoint_url``.
Nothing is mocked in-process: the provider's requests are serialized, sent, parsed and retried by
botocore as in production.
"""

from __future__ import annotations

import logging
import pathlib
import urllib.request
from types import TracebackType
from typing import Final

import aioboto3
import aiobotocore.session
from botocore.loaders import Loader
from moto import moto_api
from moto.server import ThreadedMotoServer

__all__ = ["REGION", "MotoServer"]

REGION: Final = "us-west-2"

_LOADERS: Final[dict[str, Loader]] = {}
"""The botocore data loader every `MotoServer.session` shares (see there), once the first one made it."""


class MotoServer:
    """``with MotoServer() as moto: moto.url``; ``moto.session()`` builds a session for it."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``); the default VPC comes back on next use."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    def _post(self, path: str) -> None:
        request = urllib.request.Request(f"{self.url}{path}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    def start_recording(self, path: pathlib.Path) -> None:
        """Record every request the server receives (method, URL, headers, body) into ``path``, one
        JSON object a line (moto's recorder, pointed at ``path`` so nothing lands in the working
        directory). The server runs in this process, so its recorder is this module's."""
        moto_api.recorder._location = str(path)  # the recorder reads it from the environment at import
        path.write_text("")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._post("/moto-api/recorder/stop-recording")

    @staticmethod
    def put_public_parameter(name: str, value: str, region: str = REGION) -> None:
        """Publish an AWS-owned SSM parameter (``/aws/service/...``), as AWS does for its AMI aliases.
        Clients may not write that namespace (moto refuses it as AWS does), so this seeds moto's
        in-process backend the way moto loads the few public parameters it ships."""
        import datetime as dt

        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.ssm.models import Parameter, ssm_backends

        parameters = ssm_backends[DEFAULT_ACCOUNT_ID][region]._parameters
        versions = dict.__getitem__(parameters, name) if name in parameters else []
        versions.append(
            Parameter(  # type: ignore[abstract]
                account_id=DEFAULT_ACCOUNT_ID,
                name=name,
                value=value,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=dt.datetime.now(dt.UTC),
                version=len(versions) + 1,
                data_type="aws:ec2:image",
            )
        )
        dict.__setitem__(parameters, name, versions)

    @staticmethod
    def session(region: str = REGION) -> aioboto3.Session:
        """A session with dummy credentials; register fault injectors on it before creating clients.

        Every session shares one botocore data loader: a new session's loader would parse the service
        models (EC2's alone is megabytes of JSON) and the endpoint table again on its first clients,
        about a quarter of a second per test. A loader already hands the same parsed models to every
        client of its session; event handlers (the fault injectors) stay per session."""
        core = aiobotocore.session.get_session()
        session = aioboto3.Session(
            botocore_session=core,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=region,
        )
        # the first session's loader (with the search path boto3 adds) becomes everyone's
        core.register_component(
            "data_loader", _LOADERS.setdefault("shared", core.get_component("data_loader"))
        )
        return session

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
