import { readFileSync } from "node:fs";
import path from "node:path";
import { cx_api as cxapi } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resources, synth, type Synthesized } from "./synth.js";

let s: Synthesized;
let t: Template;

beforeAll(() => {
  s = synth({ modelEndpointUrl: "https://model.example.com/invocations" });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string => s.stack.getLogicalId(c.node.defaultChild as never);

describe("CDK feature flags", () => {
  it("cdk.json sets every flag this aws-cdk-lib recommends, to the recommended value", () => {
    const cdkJson = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../cdk.json"), "utf8")) as { context: Record<string, unknown> };
    expect(cdkJson.context).toEqual(cxapi.CURRENTLY_RECOMMENDED_FLAGS);
    // ...and the synthesized app sees them.
    expect(s.app.node.tryGetContext(cxapi.ECS_REMOVE_DEFAULT_DEPLOYMENT_ALARM)).toBe(true);
  });

  it("strips every rule from the VPC's default security group", () => {
    const restrict = Object.values(resources(t, "Custom::VpcRestrictDefaultSG"));
    expect(restrict).toHaveLength(1);
    expect(restrict[0]!.Properties.DefaultSecurityGroupId).toEqual({ "Fn::GetAtt": [logicalId(s.stack.network.vpc), "DefaultSecurityGroup"] });
  });

  it("keeps the ECS deployment controller explicit, so an existing deployment's services are updated, not replaced", () => {
    for (const [id, svc] of Object.entries(resources(t, "AWS::ECS::Service"))) {
      expect(svc.Properties.DeploymentController, id).toEqual({ Type: "ECS" });
    }
  });
});
