"""The wallboard: a full-screen page of every queue's current figures, and the JSON API it reads."""
