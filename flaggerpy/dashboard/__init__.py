"""``flaggerpy dashboard``: a local web page that shows and steers releases live, with the user's own credentials."""
