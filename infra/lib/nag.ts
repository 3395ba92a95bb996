import { Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/**
 * Accepted cdk-nag (AwsSolutions) findings, acknowledged where the resource is created so
 * the reason sits next to the code it explains. Every acknowledgment needs a reason; the
 * test suite fails on any finding without one.
 */
export function acknowledge(scope: IConstruct, rule: string, reason: string): void {
  if (reason.trim().length < 20) throw new Error(`acknowledgment of ${rule} needs a real reason`);
  Validations.of(scope).acknowledge({ id: `AwsSolutions-${rule}`, reason });
}

/** Renders a resolved CloudFormation value the way cdk-nag prints it in a finding id. */
function render(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(render).join(",");
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if ("Ref" in o) return `<${String(o.Ref)}>`;
    if ("Fn::GetAtt" in o) return `<${(o["Fn::GetAtt"] as string[]).join(".")}>`;
    if ("Fn::Join" in o) {
      const [sep, parts] = o["Fn::Join"] as [string, unknown[]];
      return parts.map(render).join(sep);
    }
  }
  return JSON.stringify(value);
}

/** Acknowledges IAM5 (wildcard) for one resource pattern of a policy under `scope`. */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  acknowledge(scope, `IAM5[Resource::${render(Stack.of(scope).resolve(resource))}]`, reason);
}

/** Acknowledges IAM5 for a wildcard action such as `s3:GetObject*`. */
export function acknowledgeWildcardAction(scope: IConstruct, action: string, reason: string): void {
  acknowledge(scope, `IAM5[Action::${action}]`, reason);
}
