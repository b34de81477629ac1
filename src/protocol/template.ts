/**
 * Command templates for inbound webhooks: `{{path.to.value}}` takes a value from the
 * webhook's JSON payload. A string that is exactly one placeholder takes the value as it is
 * (number, object, ...); placeholders inside a longer string are written in as text.
 */
const WHOLE = /^\{\{\s*([A-Za-z0-9_.[\]-]+)\s*\}\}$/;
const PART = /\{\{\s*([A-Za-z0-9_.[\]-]+)\s*\}\}/g;

export class TemplateError extends Error {
  override readonly name = "TemplateError";
}

function lookup(source: unknown, path: string): unknown {
  let value: unknown = source;
  for (const key of path
    .replace(/\[(\d+)\]/g, ".$1")
    .split(".")
    .filter(Boolean)) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

export function renderTemplate(template: unknown, source: unknown): unknown {
  if (typeof template === "string") {
    const whole = WHOLE.exec(template);
    if (whole) {
      const value = lookup(source, whole[1]!);
      if (value === undefined) throw new TemplateError(`the payload has no ${whole[1]}`);
      return value;
    }
    return template.replace(PART, (_m, path: string) => {
      const value = lookup(source, path);
      if (value === undefined) throw new TemplateError(`the payload has no ${path}`);
      return typeof value === "string" ? value : JSON.stringify(value);
    });
  }
  if (Array.isArray(template)) return template.map((t) => renderTemplate(t, source));
  if (template && typeof template === "object") {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, renderTemplate(v, source)]));
  }
  return template;
}
