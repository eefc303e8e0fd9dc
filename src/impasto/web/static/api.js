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
      const params = (op.parameters || []).map(
        (p) => `${p.name} (${p.in}${p.required ? ", required" : ""}): ${schemaName(p.schema)}`);
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
    const props = Object.entries(schema.properties || {}).map(
      ([k, v]) => `${k}: ${schemaName(v)}${v.description ? ` (${v.description})` : ""}`);
    const ul = el("ul");
    for (const p of props) ul.append(el("li", "", p));
    sec.append(ul);
    box.append(sec);
  }
}

main().catch((err) => {
  document.getElementById("api-intro").textContent = `could not load /openapi.json: ${err}`;
});
