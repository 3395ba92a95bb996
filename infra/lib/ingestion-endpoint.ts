import {
  aws_certificatemanager as acm,
  aws_ec2 as ec2,
  aws_elasticloadbalancingv2 as elbv2,
  Duration,
} from "aws-cdk-lib";
import type { aws_ecs as ecs, aws_s3 as s3 } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { acknowledge } from "./nag.js";

export interface IngestionEndpointProps {
  readonly vpc: ec2.IVpc;
  readonly service: ecs.FargateService;
  /** Port the ingestion container listens on. */
  readonly containerPort: number;
  /** ACM certificate of the API's name; unset serves plain HTTP (the config allows that only when asked). */
  readonly certificateArn?: string;
  /** Who may call the API. @defaultValue the VPC's CIDR */
  readonly allowedCidr?: string;
  readonly logsBucket: s3.IBucket;
}

export interface IngestionEndpoint {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** `https://…` or `http://…` and the load balancer's DNS name. */
  readonly url: string;
}

/**
 * The internal load balancer in front of the ingestion service. With a certificate it serves
 * HTTPS on 443 and answers plain HTTP on 80 with a permanent redirect to it, so an API key never
 * crosses the network in clear text; without one, HTTP on 80.
 *
 * A function that adds to `scope` rather than a construct of its own: the resources keep the
 * construct ids (and so the logical ids) they had when they were created in Services, so an
 * existing deployment keeps its load balancer and its DNS name.
 */
export function addIngestionEndpoint(scope: Construct, props: IngestionEndpointProps): IngestionEndpoint {
  const https = props.certificateArn !== undefined;
  const securityGroup = new ec2.SecurityGroup(scope, "IngestionLbSecurityGroup", {
    vpc: props.vpc,
    description: "docpipe ingestion load balancer",
    allowAllOutbound: false,
  });
  const callers = ec2.Peer.ipv4(props.allowedCidr ?? props.vpc.vpcCidrBlock);
  if (https) securityGroup.addIngressRule(callers, ec2.Port.tcp(443), "Operators calling the API over HTTPS");
  securityGroup.addIngressRule(callers, ec2.Port.tcp(80), https ? "Plain HTTP, answered with a redirect to HTTPS" : "Operators calling the API");
  // cdk-nag cannot evaluate the VPC CIDR (a CloudFormation reference). A CIDR given in
  // context is a literal and is checked as usual, so 0.0.0.0/0 would still be reported.
  if (!props.allowedCidr) {
    acknowledge(
      securityGroup,
      "EC23",
      "Ingress is limited to the VPC's own CIDR block (an intrinsic reference cdk-nag cannot evaluate); the load balancer is internal.",
    );
  }
  // Internal: starting batches is an operator action from inside the network (VPN, bastion
  // or peered VPC), not a public API.
  const loadBalancer = new elbv2.ApplicationLoadBalancer(scope, "IngestionLb", {
    vpc: props.vpc,
    internetFacing: false,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    securityGroup,
    dropInvalidHeaderFields: true,
  });
  loadBalancer.logAccessLogs(props.logsBucket, "alb/ingestion");

  const listener = https
    ? loadBalancer.addListener("Listener", {
        port: 443,
        protocol: elbv2.ApplicationProtocol.HTTPS,
        open: false,
        certificates: [acm.Certificate.fromCertificateArn(scope, "Certificate", props.certificateArn!)],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      })
    : loadBalancer.addListener("Listener", { port: 80, protocol: elbv2.ApplicationProtocol.HTTP, open: false });
  if (https) {
    loadBalancer.addListener("HttpRedirect", {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: "HTTPS", port: "443", permanent: true }),
    });
  }
  const targetGroup = listener.addTargets("Ingestion", {
    port: props.containerPort,
    protocol: elbv2.ApplicationProtocol.HTTP,
    targets: [props.service],
    healthCheck: {
      path: "/healthz",
      healthyHttpCodes: "200",
      interval: Duration.seconds(15),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 3,
    },
    deregistrationDelay: Duration.seconds(30),
  });
  return { loadBalancer, targetGroup, url: `${https ? "https" : "http"}://${loadBalancer.loadBalancerDnsName}` };
}
