"""The evidence store: one S3 bucket per stack for Run Command output archived in full and
each image's as-built record and SBOM (construct side of ``bakery_runtime.evidence``).

Why S3: the records are whole JSON documents read by the review and the command line with
a read-only role, SendCommand archives output to S3 natively, and a bucket gives
versioning, encryption, a public-access block and a resource policy that names the only
roles that may write. The bucket is retained when the stack is deleted: its records
describe images that may outlive the stack (retained, shared).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ..core.nag import Finding, suppress
from ..core.runtime_assets import contract, patching_contract

# What only the runtime writes: records, SBOMs, each build's work in progress, and each
# persona's patch state.
RUNTIME_PREFIXES = (
    contract.RECORDS_PREFIX,
    contract.SBOMS_PREFIX,
    contract.WORK_PREFIX,
    patching_contract.STATE_PREFIX,
)
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl")


# The runtime's grants on the store name prefixes (records/*, ...) and read everything.
EVIDENCE_FINDING = Finding(
    "AwsSolutions-IAM5",
    "Records, SBOMs, builds' work and command output are objects named per persona, image "
    "and command under fixed prefixes of the stack's own evidence bucket; the bucket policy "
    "denies writes to every other principal.",
    [
        "Action::s3:GetObject*",
        "Action::s3:GetBucket*",
        "Action::s3:List*",
        r"/^Resource::<[A-Za-z0-9]*EvidenceBucket[A-Za-z0-9]*\.Arn>\/(\*|records\/\*|sboms\/\*|work\/\*|output\/\*|patch\/\*)$/",
    ],
)


class EvidenceStore(Construct):
    """The stack's evidence bucket: versioned, encrypted (SSE-S3), public access blocked,
    TLS only, objects owned by the bucket owner, retained on stack delete.

    Its policy denies every write under ``records/``, ``sboms/`` and ``work/`` to any
    principal but the roles passed to :meth:`only_written_by` (the build's step role, and the
    image resource's role, which prunes records with their images). The template's node role
    may write under ``output/`` only (:meth:`grant_command_output`).
    """

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self._writers: list[str] = []
        self._write_deny: iam.PolicyStatement | None = None
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        suppress(
            self.bucket,
            [
                Finding(
                    "AwsSolutions-S1",
                    "Writes are limited by the bucket policy to the runtime's roles, and each "
                    "record's digest is tagged on its image; object-level access logging is "
                    "left to the account's CloudTrail data events.",
                )
            ],
            children=False,
        )
        CfnOutput(
            Stack.of(self),
            "EvidenceBucketName",
            value=self.bucket.bucket_name,
            description="The as-built records and SBOMs (the review's read-only role reads "
            "records/ and sboms/)",
        )

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    def only_written_by(self, *roles: iam.IRole) -> None:
        """Deny writes of records, SBOMs, builds' work and patch state to every principal but
        `roles` and those of earlier calls (one statement; a later capability adds its role)."""
        self._writers.extend(role.role_arn for role in roles)
        if self._write_deny is None:
            self._write_deny = iam.PolicyStatement(
                sid="OnlyTheRuntimeWritesEvidence",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(WRITE_ACTIONS),
                resources=[self.bucket.arn_for_objects(f"{p}*") for p in RUNTIME_PREFIXES],
            )
            self.bucket.add_to_resource_policy(self._write_deny)
        # The same operator and key again: the last list wins (PolicyStatement.addCondition).
        self._write_deny.add_condition("ArnNotEquals", {"aws:PrincipalArn": list(self._writers)})

    def grant_patch_state(self, role: iam.IRole) -> None:
        """Read and write the personas' patch state (the patch check), and nothing else."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{patching_contract.STATE_PREFIX}*")],
            )
        )
        self._list(role)
        self.only_written_by(role)

    def _list(self, role: iam.IRole) -> None:
        """List the bucket: a role that reads a key that may not be there (a persona's first
        patch state, the command piece of a build prepared by hand, a foreign execution's
        request, a record not written yet) needs it to be told NoSuchKey. Without
        s3:ListBucket, S3 answers GetObject on a missing key with 403 AccessDenied (its
        GetObject reference, "Permissions"), which the runtime raises instead of reading as
        "not there". It lists keys, never their content."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn])
        )

    def work_only_read_by(self, *roles: iam.IRole) -> None:
        """Deny reads under ``work/`` to every principal but `roles`: it holds each build's
        request, whose WaitCondition handle is a credential (whoever holds it can end the
        deploy), so not even a reader of the whole account (``ReadOnlyAccess``) may read it."""
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheRuntimeReadsBuildsWork",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{contract.WORK_PREFIX}*")],
                conditions={
                    "ArnNotEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]}
                },
            )
        )

    def grant_record_read(self, role: iam.IRole) -> None:
        """Read as-built records (the distribution's handler, before it shares an image)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.RECORDS_PREFIX}*")],
            )
        )
        self._list(role)

    def grant_work_read(self, role: iam.IRole) -> None:
        """Read builds' work (the build watch reads a build's stored request)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.WORK_PREFIX}*")],
            )
        )
        self._list(role)

    def grant_runtime(self, role: iam.IRole) -> None:
        """Read everything; write records, SBOMs and work (the build's step role)."""
        self.bucket.grant_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{p}*") for p in RUNTIME_PREFIXES],
            )
        )

    def grant_prune(self, role: iam.IRole) -> None:
        """Delete records and SBOMs (pruned with their images)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:DeleteObject"],
                resources=[
                    self.bucket.arn_for_objects(f"{contract.RECORDS_PREFIX}*"),
                    self.bucket.arn_for_objects(f"{contract.SBOMS_PREFIX}*"),
                ],
            )
        )
        self.bucket.grant_read(role)

    def grant_command_output(self, role: iam.IRole) -> None:
        """Write Run Command output under ``output/`` (the template's node role). The SSM
        Agent's PutObject carries ``x-amz-acl: bucket-owner-full-control`` (amazon-ssm-agent
        ``agent/s3util/s3util.go``), and S3's PutObject reference asks ``s3:PutObjectAcl`` of
        a PUT that sets an ACL; whether it still does with ACLs disabled (this bucket's
        BucketOwnerEnforced) is not documented. A denied upload is only logged by the agent,
        and the build would then read the command's first 24,000 characters: an inventory
        that long fails the build. Granting it changes nothing else: no ACL can be set."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:PutObjectAcl"],
                resources=[self.bucket.arn_for_objects(f"{contract.OUTPUT_PREFIX}*")],
            )
        )
