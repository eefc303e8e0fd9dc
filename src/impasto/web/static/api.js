// Renders /openapi.json as a readable reference (no external assets).
"use strict";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `${schemaName(schema.items)}[]`;
  if (schema.anyOf) return schema.anyOf.map(schemaName).join(" | ");
  return schema.type || "";
}

function fmtValue(v) {
  // a large power of two as one: a seed's bound is 2^63, not 9223372036854776000
  const bits = typeof v === "number" && v !== 0 ? Math.log2(Math.abs(v)) : 0;
  if (bits >= 32 && Number.isInteger(bits)) return `${v < 0 ? "-" : ""}2^${bits}`;
  return typeof v === "string" ? v : JSON.stringify(v);
}

// a setting's default, range and choices, as /openapi.json gives them: on the schema, or on
// the non-null branch of an "X or null" (anyOf)
function limits(schema) {
  if (!schema) return "";
  const branches = [schema, ...(schema.anyOf || []).filter((b) => b.type !== "null")];
  const get = (k) => branches.map((b) => b[k]).find((v) => v !== undefined);
  const parts = [];
  if ("default" in schema) parts.push(`default ${fmtValue(schema.default)}`);
  const lo = get("minimum"), xlo = get("exclusiveMinimum");
  const hi = get("maximum"), xhi = get("exclusiveMaximum");
  const low = lo !== undefined ? `${fmtValue(lo)} ≤ `
    : xlo !== undefined ? `${fmtValue(xlo)} < ` : "";
  const high = hi !== undefined ? ` ≤ ${fmtValue(hi)}`
    : xhi !== undefined ? ` < ${fmtValue(xhi)}` : "";
  if (low || high) parts.push(`range ${low}value${high}`);
  const enumValues = get("enum");
  if (enumValues) parts.push(`one of ${enumValues.map(fmtValue).join(", ")}`);
  const span = (a, b) => (a === undefined ? `at most ${b}`
    : b === undefined ? `at least ${a}` : `${a} to ${b}`);
  const minLen = get("minLength"), maxLen = get("maxLength");
  if (minLen !== undefined || maxLen !== undefined) parts.push(`length ${span(minLen, maxLen)}`);
  const minItems = get("minItems"), maxItems = get("maxItems");
  if (minItems !== undefined || maxItems !== undefined) {
    parts.push(`items: ${span(minItems, maxItems)}`);
  }
  return parts.join(" · ");
}

// what the web accepts of a setting beyond its schema (the engine's Settings, whose
// descriptions are the library's): impasto.web.limits refuses the rest of these values
const ON_THE_WEB = {
  init: "on the web: noise, content or style (no image path)",
  weights: "not settable on the web: the server's own weights are used",
  weights_format: "not settable on the web (the server's weights are used)",
  max_memory: "on the web: may only lower the server's memory budget (GET /api/config); "
    + "a larger one runs within the server's",
};

// a schema's property: its type and description, then what ``notes`` say of it
function property(k, v, notes) {
  const what = v.description ? ` (${v.description})` : "";
  const li = el("li", "", `${k}: ${schemaName(v)}${what}`);
  li.dataset.field = k;
  if (notes[k]) li.append(el("br"), el("strong", "api-web", notes[k]));
  return li;
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  document.getElementById("api-intro").textContent =
    `${spec.info.title} ${spec.info.version}: ${spec.info.description}`;
  const box = document.getElementById("api-ops");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const sec = el("section", "api-op");
      const head = el("h3");
      head.append(el("code", `method ${method}`, method.toUpperCase()), " ", el("code", "", path));
      sec.append(head, el("p", "", op.summary || ""));
      if (op.description) sec.append(el("p", "muted", op.description));
      const params = (op.parameters || []).map((p) => {
        const more = limits(p.schema);
        return `${p.name} (${p.in}${p.required ? ", required" : ""}): ${schemaName(p.schema)}`
          + (more ? ` [${more}]` : "");
      });
      if (params.length) sec.append(el("p", "", `Parameters: ${params.join("; ")}`));
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        const [type, media] = Object.entries(body)[0];
        sec.append(el("p", "", `Body: ${type} ${schemaName(media.schema)}`));
      }
      const codes = Object.entries(op.responses || {}).map(([c, r]) => `${c} ${r.description}`);
      sec.append(el("p", "muted", `Responses: ${codes.join("; ")}`));
      box.append(sec);
    }
  }
  const schemas = (spec.components && spec.components.schemas) || {};
  box.append(el("h2", "", "Schemas"));
  for (const [name, schema] of Object.entries(schemas)) {
    const sec = el("section", "api-op");
    sec.append(el("h3", "", name));
    const ul = el("ul");
    const notes = name === "Settings" ? ON_THE_WEB : {};
    for (const [k, v] of Object.entries(schema.properties || {})) {
      const li = property(k, v, notes);
      const more = limits(v);
      if (more) li.append(el("br"), el("small", "api-limits", more));
      ul.append(li);
    }
    sec.append(ul);
    box.append(sec);
  }
}

main().catch((err) => {
  document.getElementById("api-intro").textContent = `could not load /openapi.json: ${err}`;
});
