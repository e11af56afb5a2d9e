"""An example Kubeflow pipeline: validate a compressed model, deploy it only if the gate passes.

``compval_validate`` (component.py) compares the candidate with the reference as the spec says;
``promote_canary`` runs only under ``dsl.If(passed == True)``: it sends all of a KServe
InferenceService's traffic to its canary (the compressed model, already deployed beside the
reference with a small ``canaryTrafficPercent``). Compile it with::

    python deploy/kubeflow/pipeline.py gated_deploy.yaml

and upload the YAML to Kubeflow Pipelines. The candidate may be the canary's own endpoint
(``candidate_uri``), so the model validated is the one that serves, behind the same server.
"""

import sys

from component import COMPVAL_IMAGE, compval_validate
from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Model


@dsl.component(base_image=COMPVAL_IMAGE)
def promote_canary(inference_service: str, namespace: str) -> str:
    """Route 100% of the InferenceService's traffic to its canary (the validated candidate).

    Needs a service account allowed to patch ``inferenceservices`` in ``namespace``.
    """
    from kubernetes import client, config

    config.load_incluster_config()
    client.CustomObjectsApi().patch_namespaced_custom_object(
        group="serving.kserve.io",
        version="v1beta1",
        namespace=namespace,
        plural="inferenceservices",
        name=inference_service,
        body={"spec": {"predictor": {"canaryTrafficPercent": 100}}},
    )
    return f"{namespace}/{inference_service}: canary promoted"


@dsl.pipeline(
    name="compval-gated-deploy",
    description="Validate a compressed model with compval; promote its canary only if it passes.",
)
def gated_deploy(
    spec_uri: str,
    data_uri: str,
    reference_uri: str,
    candidate_endpoint: str,
    inference_service: str,
    namespace: str = "default",
) -> None:
    """Gate the canary of ``inference_service`` on compval, then promote it.

    ``*_uri``: storage URIs (gs://, s3://, minio://); ``candidate_endpoint``: the canary's
    Open Inference Protocol URL (``http://<isvc>-predictor-canary.<ns>/v2/models/<name>``).
    """
    spec = dsl.importer(artifact_uri=spec_uri, artifact_class=Artifact, reimport=False)
    data = dsl.importer(artifact_uri=data_uri, artifact_class=Dataset, reimport=False)
    reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Model, reimport=False)
    gate = compval_validate(
        spec=spec.output,
        data=data.output,
        reference=reference.output,
        candidate_uri=candidate_endpoint,
    )
    gate.set_caching_options(False)  # the canary's answers may change between runs
    with dsl.If(gate.outputs["passed"] == True):  # noqa: E712 - a KFP condition, not Python
        promote_canary(inference_service=inference_service, namespace=namespace)


if __name__ == "__main__":
    compiler.Compiler().compile(gated_deploy, sys.argv[1] if len(sys.argv) > 1 else "gated.yaml")
