import {
  aws_apigateway as apigw,
  aws_cloudwatch as cw,
  aws_iam as iam,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
  Duration,
  RemovalPolicy,
  Stack,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import type { ModelLimits } from "./model-capacity.js";
import { acknowledge } from "./nag.js";

/** Retry-After (seconds) sent with the plan's 429: its rate is per second. */
export const THROTTLED_RETRY_AFTER_SECONDS = 1;
/**
 * Retry-After (seconds) sent when the day's quota is spent. API Gateway cannot compute the
 * time to the reset, so callers look again every ten minutes; the inference client holds its
 * messages meanwhile (visibility heartbeats), so nothing is lost or dead-lettered.
 */
export const QUOTA_RETRY_AFTER_SECONDS = 600;
/** Namespace of the throttle count taken from the access logs. */
export const MODEL_API_NAMESPACE = "Docpipe/ModelApi";

export interface ModelApiProps {
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly limits: ModelLimits;
  readonly logRetentionDays: number;
  /** Alarm when the p90 latency stays above this. @defaultValue 5000 */
  readonly latencyAlarmMs?: number;
}

const stageName = "v1";
const json = "application/json";

// Access log line: JSON with the status as a number, so a metric filter can count 429s.
const accessLogFormat = `{${[
  `"requestId":"$context.requestId"`,
  `"apiId":"$context.apiId"`,
  `"stage":"$context.stage"`,
  `"requestTime":"$context.requestTime"`,
  `"httpMethod":"$context.httpMethod"`,
  `"path":"$context.resourcePath"`,
  `"status":$context.status`,
  `"responseLength":"$context.responseLength"`,
  `"latencyMs":"$context.responseLatency"`,
  `"integrationStatus":"$context.integration.status"`,
  `"integrationLatencyMs":"$context.integration.latency"`,
  `"errorType":"$context.error.responseType"`,
  `"error":"$context.error.message"`,
  `"apiKeyId":"$context.identity.apiKeyId"`,
  `"sourceIp":"$context.identity.sourceIp"`,
].join(",")}}`;

// SageMaker answers ModelError (424) when the container answered anything but 200; the
// container's own status and body are inside. Passing them on keeps the contract the
// inference client knows: 4xx = this page is bad (dead-letter it), 5xx = retry.
const modelErrorTemplate = [
  "#set($context.responseOverride.status = $input.path('$.OriginalStatusCode'))",
  "$input.path('$.OriginalMessage')",
].join("\n");
// Anything else SageMaker refuses (throttling, a missing or updating endpoint, a validation
// error) is this deployment's trouble, never the page's: a retryable 503.
const sagemakerErrorTemplate = `{"error":"SageMaker answered $context.integration.status","detail":$input.json('$')}`;

/**
 * The REST API in front of the endpoint: `POST /v1/invocations`, an AWS integration to
 * `runtime.sagemaker` InvokeEndpoint through a role that may invoke that endpoint only, a usage
 * plan with one API key (kept in Secrets Manager) whose rate, burst and quota come from the
 * endpoint's measured capacity, access logs, and alarms on errors, latency and throttles.
 */
export class ModelApi extends Construct {
  public readonly api: apigw.RestApi;
  public readonly usagePlan: apigw.UsagePlan;
  public readonly apiKey: apigw.ApiKey;
  /** The API key's value: the one caller (the inference client) reads it with its task role. */
  public readonly apiKeySecret: secretsmanager.Secret;
  /** What the inference client calls (MODEL_URL). */
  public readonly invocationUrl: string;
  public readonly accessLogs: logs.LogGroup;
  public readonly alarms: readonly cw.Alarm[];

  constructor(scope: Construct, id: string, props: ModelApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.api = new apigw.RestApi(this, "Api", {
      restApiName: `${stack.stackName}-model`,
      description: "docpipe model tier: InvokeEndpoint behind a usage plan",
      endpointTypes: [apigw.EndpointType.REGIONAL],
      apiKeySourceType: apigw.ApiKeySourceType.HEADER,
      // The account-level role API Gateway needs to write any log to CloudWatch.
      cloudWatchRole: true,
      deployOptions: {
        stageName,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigw.AccessLogFormat.custom(accessLogFormat),
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        metricsEnabled: true,
      },
    });
    // CDK outputs the stage's root URL (ModelTierApiEndpoint…); the stack's ModelApiUrl is
    // the URL to call (the invocation path), so one output says it.
    this.api.node.tryRemoveChild("Endpoint");
    const cloudWatchRole = this.api.node.tryFindChild("CloudWatchRole");
    if (cloudWatchRole) {
      acknowledge(
        cloudWatchRole,
        "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        "API Gateway's account-level logging role needs the AWS managed push-to-CloudWatch policy; CDK creates it for access and execution logs.",
      );
    }
    acknowledge(
      this.api,
      "APIG3",
      "One machine caller (the inference client), authenticated by its API key and held to the usage plan; WAF's per-request charge on every page buys nothing here.",
    );
    acknowledge(
      this.api,
      "APIG4",
      "Callers authenticate with the usage plan's API key, kept in Secrets Manager and readable only by the inference client's task; SigV4 would tie every model client to AWS signing, and the key also meters them.",
    );
    acknowledge(this.api, "COG4", "No end users: the only caller is a service holding the usage plan's API key (see APIG4).");

    // The integration's credentials: InvokeEndpoint on this endpoint and nothing else.
    const invokeRole = new iam.Role(this, "InvokeRole", {
      assumedBy: new iam.ServicePrincipal("apigateway.amazonaws.com"),
      description: "docpipe model API: InvokeEndpoint on the model endpoint only",
    });
    invokeRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["sagemaker:InvokeEndpoint"], resources: [props.endpointArn] }));

    const retryAfter = (seconds: number) => ({ "method.response.header.Retry-After": `'${seconds}'` });
    const integration = new apigw.AwsIntegration({
      service: "runtime.sagemaker",
      path: `endpoints/${props.endpointName}/invocations`,
      integrationHttpMethod: "POST",
      options: {
        credentialsRole: invokeRole,
        passthroughBehavior: apigw.PassthroughBehavior.NEVER,
        requestParameters: {
          "integration.request.header.Content-Type": `'${json}'`,
          "integration.request.header.Accept": `'${json}'`,
        },
        requestTemplates: { [json]: "$input.body" },
        integrationResponses: [
          { statusCode: "200" },
          { selectionPattern: "424", statusCode: "502", responseTemplates: { [json]: modelErrorTemplate } },
          {
            // Every 4xx but 424, and every 5xx.
            selectionPattern: "4[0-13-9]\\d|42[0-35-9]|5\\d\\d",
            statusCode: "503",
            responseParameters: retryAfter(THROTTLED_RETRY_AFTER_SECONDS),
            responseTemplates: { [json]: sagemakerErrorTemplate },
          },
        ],
      },
    });

    const requestModel = this.api.addModel("InvocationRequest", {
      contentType: json,
      description: "The model contract's request: the S3 location of one page PNG",
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        type: apigw.JsonSchemaType.OBJECT,
        required: ["bucket", "key"],
        properties: {
          bucket: { type: apigw.JsonSchemaType.STRING, minLength: 1 },
          key: { type: apigw.JsonSchemaType.STRING, minLength: 1 },
        },
      },
    });
    const withRetryAfter = { "method.response.header.Retry-After": true };
    this.api.root.addResource("invocations").addMethod("POST", integration, {
      apiKeyRequired: true,
      requestValidator: this.api.addRequestValidator("Body", { validateRequestBody: true, validateRequestParameters: true }),
      requestModels: { [json]: requestModel },
      methodResponses: [
        { statusCode: "200" },
        { statusCode: "502" },
        { statusCode: "503", responseParameters: withRetryAfter },
      ],
    });

    // API Gateway's own 429s (over the plan's rate or quota) tell the caller when to come back.
    this.api.addGatewayResponse("Throttled", {
      type: apigw.ResponseType.THROTTLED,
      statusCode: "429",
      responseHeaders: { "Retry-After": `'${THROTTLED_RETRY_AFTER_SECONDS}'` },
      templates: { [json]: `{"error":"over the usage plan's rate","retryAfterSeconds":${THROTTLED_RETRY_AFTER_SECONDS}}` },
    });
    this.api.addGatewayResponse("QuotaExceeded", {
      type: apigw.ResponseType.QUOTA_EXCEEDED,
      statusCode: "429",
      responseHeaders: { "Retry-After": `'${QUOTA_RETRY_AFTER_SECONDS}'` },
      templates: { [json]: `{"error":"the usage plan's daily quota is spent","retryAfterSeconds":${QUOTA_RETRY_AFTER_SECONDS}}` },
    });

    this.apiKeySecret = new secretsmanager.Secret(this, "ApiKeySecret", {
      description: "docpipe model API key (x-api-key), read by the inference client",
      generateSecretString: { passwordLength: 40, excludePunctuation: true, includeSpace: false },
    });
    acknowledge(
      this.apiKeySecret,
      "SMG4",
      "The value is the API Gateway key itself, which cannot change in place: rotating the secret alone would lock the inference client out. The key never leaves AWS (Secrets Manager to the client's container) and admits only the pipeline's own client.",
    );
    // CloudFormation resolves the dynamic reference at deploy time: the key never appears in the template.
    this.apiKey = new apigw.ApiKey(this, "ApiKey", {
      description: "docpipe inference client",
      value: this.apiKeySecret.secretValue.unsafeUnwrap(),
    });
    const { limits } = props;
    this.usagePlan = this.api.addUsagePlan("Plan", {
      description: `From measured capacity: ${limits.perInstancePerSecond} invocations/s per instance (lib/model-capacity.ts)`,
      throttle: { rateLimit: limits.rateLimit, burstLimit: limits.burstLimit },
      quota: { limit: limits.quotaPerDay, period: apigw.Period.DAY },
      apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
    });
    this.usagePlan.addApiKey(this.apiKey);
    this.invocationUrl = this.api.urlForPath("/invocations");
    this.alarms = this.createAlarms(props.latencyAlarmMs ?? 5000);
  }

  private createAlarms(latencyAlarmMs: number): cw.Alarm[] {
    const period = Duration.minutes(5);
    const throttled = new logs.MetricFilter(this, "ThrottledFilter", {
      logGroup: this.accessLogs,
      metricNamespace: MODEL_API_NAMESPACE,
      metricName: "Throttled",
      // Two stacks in one account and region keep their counts apart.
      dimensions: { ApiId: "$.apiId" },
      filterPattern: logs.FilterPattern.numberValue("$.status", "=", 429),
      metricValue: "1",
    });
    const throttles = throttled.metric({ statistic: "Sum", period, dimensionsMap: { ApiId: this.api.restApiId } });
    const count = this.api.metricCount({ statistic: "Sum", period });
    const clientErrors = this.api.metricClientError({ statistic: "Sum", period });
    return [
      new cw.Alarm(this, "ServerErrors", {
        alarmDescription: "More than 1% of model calls failed with 5xx for 15 minutes: check the endpoint's logs and instance health",
        metric: this.api.metricServerError({ statistic: "Average", period }),
        threshold: 0.01,
        evaluationPeriods: 3,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      new cw.Alarm(this, "ClientErrors", {
        alarmDescription: "Model calls refused with 4xx other than throttling (a wrong key, bad pages): check the access logs",
        metric: new cw.MathExpression({ expression: "MAX([errors - throttles, 0])", usingMetrics: { errors: clientErrors, throttles }, period }),
        threshold: 10,
        evaluationPeriods: 1,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      new cw.Alarm(this, "Latency", {
        alarmDescription: `p90 latency of model calls above ${latencyAlarmMs} ms for 15 minutes: the endpoint is saturated or slow`,
        metric: this.api.metricLatency({ statistic: "p90", period }),
        threshold: latencyAlarmMs,
        evaluationPeriods: 3,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      new cw.Alarm(this, "Throttles", {
        alarmDescription:
          "Over half of the model calls throttled by the usage plan for 15 minutes: the pipeline offers more than the plan admits; raise modelMaxInstances (the plan follows) if pages should go faster",
        metric: new cw.MathExpression({ expression: "IF(calls > 0, throttles / calls, 0)", usingMetrics: { throttles, calls: count }, period }),
        threshold: 0.5,
        evaluationPeriods: 3,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
    ];
  }
}
