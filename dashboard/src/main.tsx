/** The dashboard's entry: React 19 root on #root. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.tsx';
import { auth } from './auth.ts';
import './styles.css';

// Before anything renders or fetches: the token leaves the address bar at once.
auth.adoptFragment();

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
