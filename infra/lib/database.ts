import { aws_ec2 as ec2, aws_rds as rds, Duration, RemovalPolicy } from "aws-cdk-lib";
import { Construct } from "constructs";
import { acknowledge } from "./nag.js";

export interface DatabaseProps {
  readonly vpc: ec2.IVpc;
  /** The only group admitted to the database port: the pipeline's tasks. */
  readonly clientSecurityGroup: ec2.ISecurityGroup;
  /** ACUs; 0 pauses the cluster after `autoPause` without connections. */
  readonly minCapacity: number;
  readonly maxCapacity: number;
  readonly deletionProtection: boolean;
}

/** Name of the database the migrations create tables in. */
export const DATABASE_NAME = "docpipe";
export const DATABASE_PORT = 5432;

/**
 * Punctuation that would need escaping in the DATABASE_URL the container entrypoint builds
 * from the secret (docker/entrypoint.sh); the generated password is alphanumeric plus `-_.~`,
 * which a URL carries as is. 30 such characters are still ~178 bits.
 */
export const URL_UNSAFE = " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}";

/**
 * Aurora PostgreSQL Serverless v2 in the isolated subnets, its credentials generated into
 * Secrets Manager, reachable only from the services' security group.
 */
export class Database extends Construct {
  public readonly cluster: rds.DatabaseCluster;
  public readonly secret: rds.DatabaseSecret;
  public readonly databaseName = DATABASE_NAME;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    this.secret = new rds.DatabaseSecret(this, "Credentials", {
      username: "docpipe",
      excludeCharacters: URL_UNSAFE,
    });
    const securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "docpipe database - PostgreSQL from the pipeline tasks only",
      allowAllOutbound: false,
    });
    this.cluster = new rds.DatabaseCluster(this, "Cluster", {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_17_7 }),
      credentials: rds.Credentials.fromSecret(this.secret),
      defaultDatabaseName: DATABASE_NAME,
      port: DATABASE_PORT,
      writer: rds.ClusterInstance.serverlessV2("writer", { publiclyAccessible: false }),
      serverlessV2MinCapacity: props.minCapacity,
      serverlessV2MaxCapacity: props.maxCapacity,
      // With a minimum of 0 ACUs the cluster pauses after this long without connections and
      // resumes on the next one in about 15 seconds; idle cost is storage only.
      ...(props.minCapacity === 0 && { serverlessV2AutoPauseDuration: Duration.minutes(30) }),
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [securityGroup],
      storageEncrypted: true,
      iamAuthentication: false,
      deletionProtection: props.deletionProtection,
      removalPolicy: props.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      backup: { retention: Duration.days(7) },
      cloudwatchLogsExports: ["postgresql"],
    });
    acknowledge(
      this.cluster,
      "RDS6",
      "The services authenticate with the Secrets Manager password; IAM tokens expire every 15 minutes and Prisma's pg pool cannot refresh them. Network access is limited to the services' security group.",
    );
    if (!props.deletionProtection) {
      acknowledge(
        this.cluster,
        "RDS10",
        "Deletion protection is on by default; this deployment turned it off explicitly (-c deletionProtection=false) to be disposable.",
      );
    }
    acknowledge(
      this.secret,
      "SMG4",
      "Tasks receive the password once at start; rotating it would break running workers until a redeploy. Rotate by hand: rotate the secret, then force a new deployment of each service (README).",
    );
    securityGroup.addIngressRule(
      props.clientSecurityGroup,
      ec2.Port.tcp(DATABASE_PORT),
      "PostgreSQL from the docpipe tasks",
    );
  }
}
