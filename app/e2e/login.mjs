// Signing in through the app's OIDC code flow and the local issuer's development login page
// (provisioner/src/local/issuer.rs: user name, a role radio button, cases, "Sign in").

/** From the app's sign-in page through the issuer's login page back to the app, as `role`. */
export async function signIn(page, url, role, user = 'investigator') {
  await page.goto(url);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await devLogin(page, role, user);
  await page.waitForURL(`${url}/**`);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** On the issuer's login page: who, which role, submit. */
export async function devLogin(page, role, user = 'investigator') {
  await page.getByLabel('User').fill(user);
  await page.getByRole('radio', { name: new RegExp(`^${role}\\b`) }).check();
  await page.getByRole('button', { name: 'Sign in' }).click();
}
