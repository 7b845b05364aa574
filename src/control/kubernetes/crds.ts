/**
 * hexmesh's CustomResourceDefinitions, generated from the zod schemas in
 * src/config/resources.ts: one schema per resource stays the single source of truth, and
 * the API server refuses a malformed TrafficPolicy before the control plane ever reads it.
 *
 * The API server wants a *structural* OpenAPI v3 schema (every node typed, no
 * `additionalProperties: false`, unions only as value checks), so the JSON Schema zod emits
 * is reduced: a duration (string or number) becomes `x-kubernetes-int-or-string`, a union of
 * objects one object with every member's fields, a union of literals an enum. What cannot
 * be said there (cross-field refinements) is checked when the control plane reads the object,
 * and reported in its status (`Accepted: False`).
 *
 * `scripts/gen-crds.ts` writes deploy/kubernetes/crds/hexmesh.yaml from this module.
 */
import { z } from 'zod';
import { stringify } from 'yaml';
import {
  authorizationPolicySchema,
  peerAuthenticationSchema,
  requestAuthenticationSchema,
  rolloutSchema,
  trafficPolicySchema,
} from '../../config/resources.ts';

export const HEXMESH_GROUP = 'hexmesh.io';
export const HEXMESH_VERSION = 'v1alpha1';

type Json = Record<string, unknown>;

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  jsonPath: string;
  priority?: number;
  description?: string;
}

const accepted: Column = {
  name: 'Accepted',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Accepted")].status',
};
const age: Column = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const target = (jsonPath = '.spec.targetRef.name'): Column => ({ name: 'Target', type: 'string', jsonPath });

/** The hexmesh kinds served as CRDs, with their `kubectl get` columns. */
export const HEXMESH_KINDS = [
  {
    kind: 'TrafficPolicy',
    plural: 'trafficpolicies',
    shortNames: ['tp'],
    schema: trafficPolicySchema,
    columns: [
      { name: 'Target-Kind', type: 'string', jsonPath: '.spec.targetRef.kind' },
      target(),
      accepted,
      age,
    ],
  },
  {
    kind: 'AuthorizationPolicy',
    plural: 'authorizationpolicies',
    shortNames: ['hap'],
    schema: authorizationPolicySchema,
    columns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action' }, target(), accepted, age],
  },
  {
    kind: 'PeerAuthentication',
    plural: 'peerauthentications',
    shortNames: ['hpa'],
    schema: peerAuthenticationSchema,
    columns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mode' }, target(), accepted, age],
  },
  {
    kind: 'RequestAuthentication',
    plural: 'requestauthentications',
    shortNames: ['hra'],
    schema: requestAuthenticationSchema,
    columns: [
      target(),
      { name: 'Issuers', type: 'string', jsonPath: '.spec.jwtRules[*].issuer' },
      accepted,
      age,
    ],
  },
  {
    kind: 'Rollout',
    plural: 'rollouts',
    shortNames: ['hro'],
    schema: rolloutSchema,
    columns: [
      { name: 'Service', type: 'string', jsonPath: '.spec.service' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Weight', type: 'integer', jsonPath: '.status.canaryWeight' },
      accepted,
      age,
    ],
  },
] as const satisfies readonly {
  kind: string;
  plural: string;
  shortNames: string[];
  schema: z.ZodType;
  columns: Column[];
}[];

/** Conditions as metav1.Condition (what Gateway API and `kubectl wait --for=condition=` read). */
const conditionsSchema: Json = {
  type: 'array',
  maxItems: 8,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
    properties: {
      type: { type: 'string', maxLength: 316 },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
      reason: { type: 'string', maxLength: 1024 },
      message: { type: 'string', maxLength: 32768 },
      lastTransitionTime: { type: 'string', format: 'date-time' },
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    },
  },
};

/** The CRDs of every hexmesh kind. */
export function hexmeshCrds(): Json[] {
  return HEXMESH_KINDS.map((k) => {
    const full = z.toJSONSchema(k.schema, {
      io: 'input',
      unrepresentable: 'any',
      target: 'openapi-3.0',
    }) as Json;
    const spec = structural((full.properties as Record<string, Json>).spec);
    return {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {
        name: `${k.plural}.${HEXMESH_GROUP}`,
        labels: { 'app.kubernetes.io/part-of': 'hexmesh' },
      },
      spec: {
        group: HEXMESH_GROUP,
        scope: 'Namespaced',
        names: {
          kind: k.kind,
          listKind: `${k.kind}List`,
          plural: k.plural,
          singular: k.kind.toLowerCase(),
          shortNames: [...k.shortNames],
          categories: ['hexmesh'],
        },
        versions: [
          {
            name: HEXMESH_VERSION,
            served: true,
            storage: true,
            subresources: { status: {} },
            additionalPrinterColumns: k.columns,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                required: ['spec'],
                properties: {
                  apiVersion: { type: 'string' },
                  kind: { type: 'string' },
                  metadata: { type: 'object' },
                  spec,
                  status: {
                    type: 'object',
                    properties: { conditions: conditionsSchema, observedGeneration: { type: 'integer' } },
                    'x-kubernetes-preserve-unknown-fields': true,
                  },
                },
              },
            },
          },
        ],
      },
    };
  });
}

/** Keys of JSON Schema that the API server's structural schemas take as they are. */
const KEEP = new Set([
  'description',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
  'enum',
  'required',
]);

/** Reduce zod's JSON Schema (OpenAPI 3.0 flavour) to a structural schema. */
export function structural(s: Json): Json {
  const union = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  if (union) return structuralUnion(union.map(structural), s);
  if ('const' in s) return { type: typeof s.const === 'number' ? 'number' : typeof s.const, enum: [s.const] };
  const type = s.type as string | string[] | undefined;
  if (Array.isArray(type)) {
    if (type.includes('string') && (type.includes('number') || type.includes('integer')))
      return { 'x-kubernetes-int-or-string': true };
    return { 'x-kubernetes-preserve-unknown-fields': true };
  }
  if (type === undefined) return { 'x-kubernetes-preserve-unknown-fields': true };
  const out: Json = { type };
  for (const [k, v] of Object.entries(s)) if (KEEP.has(k)) out[k] = v;
  // Number.MAX_SAFE_INTEGER bounds are zod's int(), not a limit anyone wrote.
  if (typeof out.maximum === 'number' && out.maximum >= Number.MAX_SAFE_INTEGER) delete out.maximum;
  if (typeof out.minimum === 'number' && out.minimum <= Number.MIN_SAFE_INTEGER) delete out.minimum;
  if (type === 'number' && Array.isArray(out.enum) && out.enum.every(Number.isInteger)) out.type = 'integer';
  // An enum's default (a targetRef's kind Service, an action ALLOW) is filled in by the API
  // server, so `kubectl get` shows the value in force; other defaults stay zod's to apply.
  if (type === 'string' && Array.isArray(out.enum) && typeof s.default === 'string') out.default = s.default;
  if (type === 'object') {
    if (s.properties) {
      const props: Json = {};
      for (const [k, v] of Object.entries(s.properties as Record<string, Json>)) props[k] = structural(v);
      out.properties = props;
    } else if (s.additionalProperties && typeof s.additionalProperties === 'object')
      out.additionalProperties = structural(s.additionalProperties as Json);
    else out['x-kubernetes-preserve-unknown-fields'] = true;
    if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  }
  if (type === 'array')
    out.items = s.items ? structural(s.items as Json) : { 'x-kubernetes-preserve-unknown-fields': true };
  return out;
}

/** One schema for a union: literals → an enum; objects → their fields merged, none required. */
function structuralUnion(members: Json[], outer: Json): Json {
  const desc = typeof outer.description === 'string' ? { description: outer.description } : {};
  if (members.every((m) => Array.isArray(m.enum) && m.type === members[0].type))
    return { ...desc, type: members[0].type, enum: members.flatMap((m) => m.enum as unknown[]) };
  if (members.every((m) => m.type === 'object')) {
    const props: Record<string, Json> = {};
    for (const m of members)
      for (const [k, v] of Object.entries((m.properties ?? {}) as Record<string, Json>))
        props[k] = props[k] ? mergeField(props[k], v) : v;
    return { ...desc, type: 'object', properties: props };
  }
  if (
    members.some((m) => m['x-kubernetes-int-or-string']) ||
    members.every((m) => m.type === 'string' || m.type === 'integer' || m.type === 'number')
  )
    return { ...desc, 'x-kubernetes-int-or-string': true };
  return { ...desc, 'x-kubernetes-preserve-unknown-fields': true };
}

/** The same field in two union members (a discriminator): enums joined, else the first. */
function mergeField(a: Json, b: Json): Json {
  if (Array.isArray(a.enum) && Array.isArray(b.enum) && a.type === b.type)
    return { ...a, enum: [...new Set([...(a.enum as unknown[]), ...(b.enum as unknown[])])] };
  if (a.type === 'object' && b.type === 'object' && a.properties && b.properties)
    return structuralUnion([a, b], {});
  return a;
}

/** The CRDs as one multi-document YAML file (deploy/kubernetes/crds/hexmesh.yaml). */
export function crdsYaml(): string {
  const header = '# Generated by scripts/gen-crds.ts from src/config/resources.ts; do not edit.\n';
  return (
    header +
    hexmeshCrds()
      .map((c) => `---\n${stringify(c, { lineWidth: 0 })}`)
      .join('')
  );
}
