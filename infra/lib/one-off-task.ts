import { type aws_ec2 as ec2, aws_ecs as ecs, aws_logs as logs, RemovalPolicy } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { Queues } from "./queues.js";

/** What a task of the pipeline's own (the admin task, the reconciler) runs with. */
export interface OneOffTaskProps {
  readonly cluster: ecs.ICluster;
  /** The services' group: the one the database admits. */
  readonly securityGroup: ec2.ISecurityGroup;
  /** Its service's image (lib/images.ts). */
  readonly image: ecs.ContainerImage;
  /** The services' settings and database credentials (`Services.taskSettings`). */
  readonly environment: Record<string, string>;
  readonly secrets: Record<string, ecs.Secret>;
  readonly queues: Queues;
  readonly logRetentionDays: number;
}

/**
 * The task definition of a task that runs and ends (not a service): the migration, the admin task, the
 * reconciler's pass. On linux/amd64, as its image is built (lib/images.ts), with a log group of
 * its own, destroyed with the stack. Created as `Task` and `Logs` under `scope`.
 */
export function oneOffTask(
  scope: Construct,
  opts: { cpu: number; memoryLimitMiB: number; logRetentionDays: number },
): { taskDefinition: ecs.FargateTaskDefinition; logGroup: logs.LogGroup } {
  const logGroup = new logs.LogGroup(scope, "Logs", {
    retention: opts.logRetentionDays as logs.RetentionDays,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const taskDefinition = new ecs.FargateTaskDefinition(scope, "Task", {
    cpu: opts.cpu,
    memoryLimitMiB: opts.memoryLimitMiB,
    runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
  });
  return { taskDefinition, logGroup };
}
