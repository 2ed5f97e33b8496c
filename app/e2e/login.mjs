// Signing in through the app's OIDC code flow and the local issuer's development login page.

/** From the app's sign-in page through the issuer's login page back to the app, as `role`. */
export async function signIn(page, url, role) {
  await page.goto(url);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await devLogin(page, role);
  await page.waitForURL(`${url}/**`);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** The local issuer's development login page: choose the role, submit. */
export async function devLogin(page, role) {
  const roleSelect = page.getByLabel(/role/i);
  if (await roleSelect.count()) {
    const tag = await roleSelect.first().evaluate((e) => e.tagName);
    if (tag === 'SELECT') await roleSelect.first().selectOption(role);
    else await page.getByLabel(role, { exact: true }).check();
  }
  await page.getByRole('button', { name: /sign in|log in|continue/i }).click();
}
