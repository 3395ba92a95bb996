import {
  aws_applicationautoscaling as appscaling,
  aws_ecr as ecr,
  aws_iam as iam,
  aws_logs as logs,
  aws_sagemaker as sagemaker,
  Duration,
  RemovalPolicy,
  Stack,
} from "aws-cdk-lib";
import type { aws_s3 as s3 } from "aws-cdk-lib";
import { Construct } from "constructs";
import { modelImageAsset } from "./images.js";
import type { ModelTierConfig } from "./model-capacity.js";
import { acknowledge, acknowledgeWildcardResource } from "./nag.js";
import { workKeys } from "./storage.js";

/** The endpoint's one production variant; autoscaling addresses it by name. */
export const VARIANT_NAME = "AllTraffic";

export interface ModelEndpointProps {
  readonly config: ModelTierConfig;
  /** The PNGs the model reads (under the images prefix). */
  readonly workBucket: s3.IBucket;
  readonly logRetentionDays: number;
}

/**
 * A SageMaker real-time endpoint running the model image (the reference model built from
 * docker/, or a team's own), its execution role (pull the image, read the page PNGs, write its
 * logs) and target tracking on invocations per instance between the configured bounds.
 */
export class ModelEndpoint extends Construct {
  public readonly endpointName: string;
  /** `arn:…:endpoint/<name>`: what InvokeEndpoint is scoped to. */
  public readonly endpointArn: string;
  public readonly endpoint: sagemaker.CfnEndpoint;
  public readonly executionRole: iam.Role;
  public readonly scaling: appscaling.ScalableTarget;

  constructor(scope: Construct, id: string, props: ModelEndpointProps) {
    super(scope, id);
    const { config } = props;
    const stack = Stack.of(this);
    // Named, so the role, the log group and the API can name it before it exists. The name
    // carries the instance type: SageMaker refuses to change the type of an autoscaled variant
    // in place, so a new type makes a new endpoint, and the API moves to it once it is in service.
    this.endpointName = `${stack.stackName}-model-${config.instanceType.replace(/\./g, "-")}`.slice(0, 63).replace(/-+$/, "");
    this.endpointArn = stack.formatArn({ service: "sagemaker", resource: "endpoint", resourceName: this.endpointName.toLowerCase() });

    this.executionRole = new iam.Role(this, "ExecutionRole", {
      assumedBy: new iam.ServicePrincipal("sagemaker.amazonaws.com"),
      description: "docpipe model endpoint: pull its image, read page PNGs, write its logs and metrics",
    });
    const role = this.executionRole;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: [props.workBucket.arnForObjects(workKeys.images)] }),
    );
    acknowledgeWildcardResource(
      role,
      props.workBucket.arnForObjects(workKeys.images),
      "Page keys embed batch and document ids generated at run time; batches/*/documents/*/images/* is the narrowest pattern for the PNGs the model scores. Read only.",
    );

    // SageMaker writes the container's output here; created by us so it has a retention.
    const logGroup = new logs.LogGroup(this, "Logs", {
      logGroupName: `/aws/sagemaker/Endpoints/${this.endpointName}`,
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        resources: [logGroup.logGroupArn],
      }),
    );
    acknowledgeWildcardResource(
      role,
      logGroup.logGroupArn,
      "A log group's ARN ends in :* to cover its streams, which SageMaker names per instance at run time; this is the endpoint's own group only.",
    );
    // Instance metrics (CPU, memory, disk) are published with the execution role.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["cloudwatch:PutMetricData"],
        resources: ["*"],
        conditions: { StringLike: { "cloudwatch:namespace": "/aws/sagemaker/*" } },
      }),
    );

    const image = this.image(config, role);
    const model = new sagemaker.CfnModel(this, "Model", {
      executionRoleArn: role.roleArn,
      primaryContainer: {
        image,
        environment: { AWS_REGION: stack.region, LOG_LEVEL: "info" },
      },
    });
    // CreateModel checks that the role can pull the image: the policy must exist first.
    model.node.addDependency(role);

    const endpointConfig = new sagemaker.CfnEndpointConfig(this, "Config", {
      productionVariants: [
        {
          variantName: VARIANT_NAME,
          modelName: model.attrModelName,
          instanceType: config.instanceType,
          initialInstanceCount: config.capacity.minInstances,
          initialVariantWeight: 1,
        },
      ],
    });
    this.endpoint = new sagemaker.CfnEndpoint(this, "Endpoint", {
      endpointName: this.endpointName,
      endpointConfigName: endpointConfig.attrEndpointConfigName,
      // A redeploy keeps the instance count autoscaling has set instead of resetting it.
      retainAllVariantProperties: true,
    });
    this.endpoint.node.addDependency(logGroup);

    this.scaling = new appscaling.ScalableTarget(this, "Scaling", {
      serviceNamespace: appscaling.ServiceNamespace.SAGEMAKER,
      resourceId: `endpoint/${this.endpoint.attrEndpointName}/variant/${VARIANT_NAME}`,
      scalableDimension: "sagemaker:variant:DesiredInstanceCount",
      minCapacity: config.capacity.minInstances,
      maxCapacity: config.capacity.maxInstances,
      // Application Auto Scaling's own service-linked role for SageMaker variants (created on first use).
      role: iam.Role.fromRoleArn(
        this,
        "ScalingRole",
        stack.formatArn({
          service: "iam",
          region: "",
          resource: "role",
          resourceName:
            "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        }),
      ),
    });
    this.scaling.scaleToTrackMetric("InvocationsPerInstance", {
      predefinedMetric: appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
      targetValue: config.limits.invocationsPerInstancePerMinute,
      // A new instance takes minutes to start: add early, remove slowly.
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(10),
    });
  }

  /** The image URI SageMaker pulls, and the role's right to pull it. */
  private image(config: ModelTierConfig, role: iam.Role): string {
    if (!config.imageUri) {
      const asset = modelImageAsset(this, "Image");
      asset.repository.grantPull(role);
      this.acknowledgeEcrToken(role);
      return asset.imageUri;
    }
    const [registry, rest] = [config.imageUri.slice(0, config.imageUri.indexOf("/")), config.imageUri.slice(config.imageUri.indexOf("/") + 1)];
    const [account, , , region] = registry.split(".");
    const repositoryName = rest.split(/[:@]/)[0]!;
    ecr.Repository.fromRepositoryAttributes(this, "Repository", {
      repositoryName,
      repositoryArn: Stack.of(this).formatArn({ service: "ecr", account, region, resource: "repository", resourceName: repositoryName }),
    }).grantPull(role);
    this.acknowledgeEcrToken(role);
    return config.imageUri;
  }

  private acknowledgeEcrToken(role: iam.Role): void {
    acknowledge(
      role,
      "IAM5[Resource::*]",
      "ecr:GetAuthorizationToken has no resource-level permissions, and cloudwatch:PutMetricData is limited by condition to the /aws/sagemaker/* namespaces; image pulls are scoped to the model's repository.",
    );
  }
}
