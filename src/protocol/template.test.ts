import { describe, expect, it } from "vitest";
import { renderTemplate, TemplateError } from "./template.js";

describe("command templates", () => {
  const payload = { alert: { host: "cl_X", severity: 3, labels: { svc: "kiosk" } }, items: ["a", "b"] };

  it("takes whole values as they are and writes parts into strings", () => {
    expect(
      renderTemplate(
        {
          clientId: "{{alert.host}}",
          priority: "{{ alert.severity }}",
          payload: {
            name: "{{alert.labels.svc}}",
            note: "sev {{alert.severity}} on {{items[1]}}",
            labels: "{{alert.labels}}",
          },
        },
        payload,
      ),
    ).toEqual({
      clientId: "cl_X",
      priority: 3,
      payload: { name: "kiosk", note: "sev 3 on b", labels: { svc: "kiosk" } },
    });
  });

  it("names a missing value", () => {
    expect(() => renderTemplate({ x: "{{alert.nope}}" }, payload)).toThrow(TemplateError);
    expect(() => renderTemplate({ x: "a {{nope}}" }, payload)).toThrow(/payload has no nope/);
  });
});
