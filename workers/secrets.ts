/** Constant-time comparison of two strings (Workers' crypto.subtle.timingSafeEqual); unequal lengths are unequal. */
const encoder = new TextEncoder();

export function constantTimeEqual(a: string, b: string): boolean {
  const ea = encoder.encode(a);
  const eb = encoder.encode(b);
  return ea.length === eb.length && crypto.subtle.timingSafeEqual(ea, eb);
}
