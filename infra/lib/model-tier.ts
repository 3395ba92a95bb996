import { aws_cloudwatch_actions as cwActions, type aws_s3 as s3, type aws_sns as sns } from "aws-cdk-lib";
import { Construct } from "constructs";
import { ModelApi } from "./model-api.js";
import type { ModelTierConfig } from "./model-capacity.js";
import { ModelEndpoint } from "./model-endpoint.js";

export interface ModelTierProps {
  readonly config: ModelTierConfig;
  /** The bucket of page PNGs the model reads. */
  readonly workBucket: s3.IBucket;
  readonly logRetentionDays: number;
}

/**
 * The model endpoint of a deploy that names none (DESIGN.md: API Gateway in front of an
 * autoscaling SageMaker endpoint): the reference model (or `modelImageUri`) on a SageMaker
 * endpoint with variant autoscaling, behind a REST API whose usage plan sheds load with 429
 * before the endpoint is overrun. The inference client calls {@link invocationUrl} with the key
 * in {@link apiKeySecret}.
 */
export class ModelTier extends Construct {
  public readonly endpoint: ModelEndpoint;
  public readonly api: ModelApi;

  constructor(scope: Construct, id: string, props: ModelTierProps) {
    super(scope, id);
    this.endpoint = new ModelEndpoint(this, "Endpoint", {
      config: props.config,
      workBucket: props.workBucket,
      logRetentionDays: props.logRetentionDays,
    });
    this.api = new ModelApi(this, "Api", {
      endpointName: this.endpoint.endpointName,
      endpointArn: this.endpoint.endpointArn,
      limits: props.config.limits,
      logRetentionDays: props.logRetentionDays,
    });
  }

  get invocationUrl(): string {
    return this.api.invocationUrl;
  }

  get apiKeySecret() {
    return this.api.apiKeySecret;
  }

  /** Sends the tier's alarms (and their recovery) to the pipeline's alarm topic. */
  notify(topic: sns.ITopic): void {
    const action = new cwActions.SnsAction(topic);
    for (const alarm of this.api.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }
}
