import { aws_ec2 as ec2, aws_logs as logs, RemovalPolicy } from "aws-cdk-lib";
import { Construct } from "constructs";

export interface NetworkProps {
  /** NAT gateways; each costs about 33 USD a month even when idle. */
  readonly natGateways: number;
  readonly logRetentionDays: number;
}

/**
 * The VPC: public subnets for the NAT gateway, private subnets for the tasks and the load
 * balancer, isolated subnets for the database. S3 traffic (every page is read and written)
 * goes through a free gateway endpoint instead of the NAT gateway's per-GB charge.
 */
export class Network extends Construct {
  public readonly vpc: ec2.Vpc;
  /** Attached to every task of the pipeline; the database admits only this group. */
  public readonly servicesSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: props.natGateways,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: "database", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      gatewayEndpoints: { s3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    // Rejected traffic only: enough to debug security groups, without paying to log every page's bytes.
    this.vpc.addFlowLog("RejectedTraffic", {
      trafficType: ec2.FlowLogTrafficType.REJECT,
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, "FlowLogs", {
          retention: props.logRetentionDays as logs.RetentionDays,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      ),
    });
    this.servicesSecurityGroup = new ec2.SecurityGroup(this, "Services", {
      vpc: this.vpc,
      description: "docpipe tasks: outbound to AWS APIs, the model endpoint and the database",
      allowAllOutbound: true,
    });
  }
}
